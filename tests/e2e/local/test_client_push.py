"""The client SDK's ``watch``/``wait`` and the CLI's ``watch``/``submit --wait`` over ``/ws``
of a real `taskmanager serve` (docs/push.md, "The SDK")."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from typing import TYPE_CHECKING

import pytest

from taskmanager.client import TaskClient, TaskNotFoundError, WaitTimeoutError
from tests.e2e.local.harness import cli_env

if TYPE_CHECKING:
    from taskmanager.domain.events import TaskResource
    from tests.e2e.local.harness import LocalServer


def _client(server: LocalServer) -> TaskClient:
    return TaskClient(server.url, websocket_url=server.ws_url)


def test_watch_yields_each_version_in_order_until_success(server: LocalServer) -> None:
    client = _client(server)
    task = client.submit("demo.sleep", {"seconds": 0.6, "steps": 3})
    seen = list(client.watch(task.id, timeout=20))
    versions = [t.version for t in seen]
    assert versions == sorted(set(versions))
    assert versions[-1] == 6  # created, running, three progress updates, success
    assert seen[-1].status == "SUCCESSFUL"
    assert [t.progress.percent for t in seen if t.progress][-1] == 100.0
    assert seen[-1] == client.get(task.id)


def test_wait_over_the_socket_calls_on_progress_and_returns_the_result(
    server: LocalServer,
) -> None:
    client = _client(server)
    task = client.submit("demo.sleep", {"seconds": 0.4, "steps": 2})
    progress: list[TaskResource] = []
    done = client.wait(task.id, timeout=20, on_progress=progress.append)
    assert done.status == "SUCCESSFUL"
    assert done.result["steps"] == 2
    assert done.result["slept"] >= 0.4
    assert progress
    assert all(t.status in {"CREATED", "RUNNING"} for t in progress)


def test_watch_of_a_finished_task_yields_its_final_state_once(server: LocalServer) -> None:
    client = _client(server)
    task = client.submit("demo.echo", 5)
    server.wait_for(task.id, {"SUCCESSFUL"})
    assert [t.result for t in client.watch(task.id, timeout=10)] == [5]


def test_watch_of_an_unknown_task_raises_task_not_found(server: LocalServer) -> None:
    with pytest.raises(TaskNotFoundError):
        list(_client(server).watch(str(uuid.uuid4()), timeout=10))


def test_wait_gives_up_at_its_timeout_with_the_last_state(server: LocalServer) -> None:
    client = _client(server)
    task = client.submit("no.processor")
    with pytest.raises(WaitTimeoutError) as timed_out:
        client.wait(task.id, timeout=0.5)
    assert timed_out.value.task.status == "CREATED"


def _cli(server: LocalServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskmanager.entrypoints.cli", "--url", server.url, *args],
        capture_output=True,
        text=True,
        env={**cli_env(), "TASKMANAGER_WS_URL": server.ws_url},
        timeout=60,
        check=False,
    )


def test_cli_submit_wait_follows_the_socket(server: LocalServer) -> None:
    result = _cli(
        server,
        "--json",
        "submit",
        "demo.sleep",
        "--input",
        '{"seconds": 0.4, "steps": 2}',
        "--wait",
    )
    assert result.returncode == 0, result.stderr
    changes = [json.loads(line) for line in result.stdout.splitlines()]
    versions = [c["version"] for c in changes]  # from wherever the task was when it subscribed
    assert versions == list(range(versions[0], 6))
    assert changes[-1]["status"] == "SUCCESSFUL"


def test_cli_watch_over_the_socket_ends_with_the_failure(server: LocalServer) -> None:
    task = server.submit("demo.fail", {"code": "NOPE"})
    result = _cli(server, "watch", task["id"], "--ws-url", server.ws_url)
    assert result.returncode == 1
    assert "  error: NOPE: demo.fail always fails" in result.stdout.splitlines()


def test_cli_watch_says_when_the_socket_cannot_be_reached(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = server.submit("no.processor")
    monkeypatch.setenv("TASKMANAGER_RECONNECT_SECONDS", "1")  # not the default 30 s
    result = _cli(server, "watch", task["id"], "--ws-url", "ws://127.0.0.1:9/ws")
    assert result.returncode == 1
    assert "UNREACHABLE" in result.stderr
    assert "Traceback" not in result.stderr
