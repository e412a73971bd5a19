"""Server-sent events: the current task first, then every change in order, then the end."""

from __future__ import annotations

import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.e2e.local.harness import LocalServer


def test_stream_starts_with_the_task_then_every_change_until_terminal(
    server: LocalServer,
) -> None:
    task = server.submit("demo.sleep", {"seconds": 1.0, "steps": 4})
    received = list(server.events(f"/tasks/{task['id']}/events"))
    names = [name for name, _ in received]
    versions = [data["version"] for _, data in received]
    assert names[0] == "task"
    assert versions == list(range(versions[0], versions[0] + len(versions)))  # none missed
    assert names[-1] == "TaskSuccessful"
    assert received[-1][1]["status"] == "SUCCESSFUL"
    assert received[-1][1]["result"]["steps"] == 4
    assert all(data["input"] == {"seconds": 1.0, "steps": 4} for _, data in received)
    percents = [
        d["progress"]["percent"] for n, d in received if n == "TaskRunning" and d["progress"]
    ]
    assert percents == sorted(percents)
    assert percents[-1] == 100.0


def test_reconnecting_client_catches_up_from_the_current_task(server: LocalServer) -> None:
    task = server.submit("demo.sleep", {"seconds": 1.5, "steps": 3})
    server.wait_for(task["id"], {"RUNNING"})
    first_stream = server.events(f"/tasks/{task['id']}/events")
    _, snapshot = next(first_stream)
    first_stream.close()  # the client goes away mid-task
    received = list(server.events(f"/tasks/{task['id']}/events"))
    assert received[0][0] == "task"
    assert received[0][1]["version"] >= snapshot["version"]
    versions = [data["version"] for _, data in received]
    assert versions == sorted(set(versions))
    assert received[-1][1]["status"] == "SUCCESSFUL"


def test_stream_of_a_finished_task_sends_it_once_and_ends(server: LocalServer) -> None:
    task = server.submit("demo.echo", "hi")
    done = server.wait_for(task["id"], {"SUCCESSFUL"})
    received = list(server.events(f"/tasks/{task['id']}/events"))
    assert received == [("task", done)]


def test_stream_of_an_unknown_task_is_404(server: LocalServer) -> None:
    response = server.request("GET", f"/tasks/{uuid.uuid4()}/events")
    assert response.status == 404
    assert response.body["error"]["code"] == "TASK_NOT_FOUND"


def test_cancel_ends_the_stream_with_the_failure(server: LocalServer) -> None:
    task = server.submit("no.processor")
    received: list[tuple[str, dict[str, Any]]] = []
    opened = threading.Event()

    def follow() -> None:
        for item in server.events(f"/tasks/{task['id']}/events"):
            received.append(item)
            opened.set()

    reader = threading.Thread(target=follow)
    reader.start()
    assert opened.wait(5)
    server.request("POST", f"/tasks/{task['id']}/cancel")
    reader.join(10)
    assert not reader.is_alive()
    assert [name for name, _ in received] == ["task", "TaskFailed"]
    assert received[1][1]["error"]["code"] == "CANCELLED"


def test_all_tasks_stream_carries_changes_of_every_task(server: LocalServer) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    opened = threading.Event()
    ids: set[str] = set()

    def follow() -> None:
        opened.set()
        # Every event is kept: a task's TaskCreated may come in before its submit has
        # returned the id (the answer and the dispatcher both follow the same commit).
        for name, data in server.events("/events"):
            seen.append((name, data))
            done = {d["id"] for n, d in seen if n == "TaskSuccessful"}
            if len(ids) == 2 and ids <= done:
                return

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    assert opened.wait(5)
    time.sleep(0.5)  # the thread opens the stream before the tasks are submitted
    ids.update(server.submit("demo.echo", n)["id"] for n in (1, 2))
    reader.join(10)
    ours = [(n, d) for n, d in seen if d["id"] in ids]
    assert {(n, d["id"]) for n, d in ours if n == "TaskCreated"} == {
        ("TaskCreated", i) for i in ids
    }
    assert {d["id"] for n, d in ours if n == "TaskSuccessful"} == ids
