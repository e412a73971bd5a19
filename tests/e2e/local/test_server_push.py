"""``/ws`` of `taskmanager serve` with a real WebSocket client over loopback (docs/push.md):
catch-up, submit and follow, isolation, unsubscribe, malformed messages, restart."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from taskmanager.adapters.memory import SystemClock, UuidIdFactory
from taskmanager.adapters.sqlite import SQLiteTaskRepository
from taskmanager.domain.model import SubmitTask
from taskmanager.domain.services import submit_task
from tests.e2e.local.harness import LocalServer

if TYPE_CHECKING:
    from pathlib import Path


def _in_version_order(seen: list[dict[str, Any]]) -> list[int]:
    versions = [task["version"] for task in seen]
    assert versions == sorted(set(versions)), versions
    return versions


def test_submit_over_the_socket_then_running_progress_and_success_in_version_order(
    server: LocalServer,
) -> None:
    with server.socket() as ws:
        accepted = ws.ask(
            {
                "action": "submit",
                "request_id": "s-1",
                "task": {"type": "demo.sleep", "input": {"seconds": 0.6, "steps": 3}},
            }
        )
        assert accepted["type"] == "accepted"
        assert accepted["request_id"] == "s-1"
        assert accepted["task"]["status"] == "CREATED"
        task_id = accepted["task"]["id"]
        seen = ws.until_terminal(task_id)
    versions = _in_version_order(seen)
    assert versions[0] == 2
    assert seen[0]["status"] == "RUNNING"
    percents = [t["progress"]["percent"] for t in seen if t["progress"]]
    assert percents == [pytest.approx(100 / 3), pytest.approx(200 / 3), 100.0]
    assert seen[-1]["status"] == "SUCCESSFUL"
    assert seen[-1]["result"]["steps"] == 3
    assert all(t["input"] == {"seconds": 0.6, "steps": 3} for t in seen)  # full resources
    assert seen[-1] == server.get(task_id)  # exactly what GET returns


def test_subscribe_to_a_finished_task_catches_up_with_its_final_state(
    server: LocalServer,
) -> None:
    task = server.submit("demo.echo", {"hello": 1})
    done = server.wait_for(task["id"], {"SUCCESSFUL"})
    with server.socket() as ws:
        reply = ws.ask({"action": "subscribe", "task_id": task["id"], "request_id": "c"})
        assert reply == {"type": "task", "request_id": "c", "task": done, "omitted": []}
        assert ws.quiet(0.3) == []


def test_subscribe_to_an_open_task_answers_at_once_then_follows_it(server: LocalServer) -> None:
    task = server.submit("no.processor")
    with server.socket() as ws:
        reply = ws.ask({"action": "subscribe", "task_id": task["id"]})
        assert reply["task"]["status"] == "CREATED"
        assert server.request("POST", f"/tasks/{task['id']}/cancel").status == 202
        failed = ws.recv()
    assert failed["type"] == "task"
    assert failed["task"]["status"] == "FAILED"
    assert failed["task"]["error"]["code"] == "CANCELLED"
    assert failed["task"]["version"] == 2


def test_another_owners_task_is_not_found_and_its_changes_never_arrive(
    server: LocalServer,
) -> None:
    with server.socket() as ws:
        assert ws.ask({"action": "subscribe", "request_id": "all"})["type"] == "subscribed"
        repo = SQLiteTaskRepository(str(server.db))  # another owner writing to the same file
        try:
            foreign = submit_task(
                SubmitTask(type="no.processor", input="secret"),
                owner="mallory",
                repo=repo,
                clock=SystemClock(),
                ids=UuidIdFactory(),
            ).task
        finally:
            repo.close()
        refused = ws.ask({"action": "subscribe", "task_id": foreign.id, "request_id": "f"})
        assert refused["type"] == "error"
        assert refused["request_id"] == "f"
        assert refused["error"]["code"] == "TASK_NOT_FOUND"
        server.wait_for(server.submit("demo.echo", "mine")["id"], {"SUCCESSFUL"})
        received = ws.quiet(1.5)  # the relay polls the file: the foreign event came first
    ids = {m["task"]["id"] for m in received}
    assert foreign.id not in ids
    assert len(ids) == 1
    assert {m["task"]["status"] for m in received} >= {"CREATED", "SUCCESSFUL"}


def test_unsubscribed_task_sends_nothing_more(server: LocalServer) -> None:
    left, kept = server.submit("no.processor"), server.submit("no.processor")
    with server.socket() as ws:
        for task in (left, kept):
            assert ws.ask({"action": "subscribe", "task_id": task["id"]})["type"] == "task"
        reply = ws.ask({"action": "unsubscribe", "task_id": left["id"], "request_id": "u"})
        assert reply == {"type": "unsubscribed", "request_id": "u", "task_id": left["id"]}
        server.request("POST", f"/tasks/{left['id']}/cancel")
        server.request("POST", f"/tasks/{kept['id']}/cancel")
        received = ws.recv()
        assert received["task"]["id"] == kept["id"]
        assert ws.quiet(0.3) == []


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "INVALID_REQUEST"),
        (b"\x00\x01binary", "INVALID_REQUEST"),
        ('{"action": "dance", "request_id": "d"}', "INVALID_REQUEST"),
        ('{"action": "subscribe", "task_id": 7}', "INVALID_REQUEST"),
        ('{"action": "submit", "task": {"type": "t", "timeout_seconds": 0}}', "INVALID_REQUEST"),
        ('{"action": "subscribe", "task_id": "' + "a" * 600_000 + '"}', "PAYLOAD_TOO_LARGE"),
    ],
)
def test_malformed_messages_get_an_error_and_the_socket_stays_open(
    server: LocalServer, frame: str | bytes, code: str
) -> None:
    with server.socket() as ws:
        reply = ws.ask(frame)
        assert reply["type"] == "error"
        assert reply["error"]["code"] == code
        assert reply["error"]["message"]
        if '"request_id": "d"' in str(frame):
            assert reply["request_id"] == "d"
        unknown = str(uuid.uuid4())
        still = ws.ask({"action": "subscribe", "task_id": unknown})
        assert still["error"]["code"] == "TASK_NOT_FOUND"


def test_a_page_of_another_site_cannot_open_the_socket(server: LocalServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        server.socket(origin="http://evil.example")
    assert refused.value.response.status_code == 403
    with server.socket(origin=f"http://127.0.0.1:{server.port}") as ws:  # its own page can
        assert ws.ask({"action": "subscribe"})["type"] == "subscribed"


def test_client_reconnects_after_a_restart_and_catches_up(fresh_db: Path) -> None:
    first = LocalServer(fresh_db, ("--accept-any-type",)).start()
    try:
        task = first.submit("no.processor")
        with first.socket() as ws:
            assert ws.ask({"action": "subscribe", "task_id": task["id"]})["task"]["version"] == 1
            first.stop()
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=15)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1001
    finally:
        first.stop()
    second = LocalServer(fresh_db, ("--accept-any-type",)).start()
    try:
        with second.socket() as ws:
            reply = ws.ask({"action": "subscribe", "task_id": task["id"]})
            assert reply["task"]["status"] == "CREATED"
            second.request("POST", f"/tasks/{task['id']}/cancel")
            assert ws.recv()["task"]["status"] == "FAILED"
    finally:
        second.stop()
