"""Stopping and crashing `taskmanager serve`: graceful shutdown on SIGTERM/SIGINT, and after
SIGKILL every accepted task is still there and undelivered `TaskCreated` are delivered."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import time
from typing import TYPE_CHECKING

import pytest

from tests.e2e.local.harness import LocalServer, cli_env

if TYPE_CHECKING:
    from pathlib import Path

TERMINAL = {"SUCCESSFUL", "FAILED"}

#: A process that commits tasks (and their TaskCreated in the outbox) through the SQLite
#: store, then dies by SIGKILL before anything delivers them.
_COMMIT_THEN_DIE = textwrap.dedent(
    """
    import os, signal, sys
    from taskmanager.adapters.memory import SystemClock, UuidIdFactory
    from taskmanager.adapters.sqlite import SQLiteTaskRepository
    from taskmanager.domain.model import SubmitTask
    from taskmanager.domain.services import submit_task

    repo = SQLiteTaskRepository(sys.argv[1])
    for n in range(int(sys.argv[2])):
        task = submit_task(
            SubmitTask(type="demo.echo", input={"n": n}),
            owner="local", repo=repo, clock=SystemClock(), ids=UuidIdFactory(),
        ).task
        print(task.id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def _refuses_connections(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_after_sigkill_and_restart_nothing_accepted_is_lost(fresh_db: Path) -> None:
    server = LocalServer(fresh_db).start()
    accepted = [server.submit("no.processor", {"n": n})["id"] for n in range(20)]
    running = server.submit("demo.sleep", {"seconds": 30, "steps": 30})["id"]
    server.wait_for(running, {"RUNNING"})
    server.kill()

    # Tasks committed with their TaskCreated by a process killed before delivering them.
    crashed = subprocess.run(
        [sys.executable, "-c", _COMMIT_THEN_DIE, str(fresh_db), "5"],
        capture_output=True,
        text=True,
        env=cli_env(),
        check=False,
        timeout=60,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    undelivered = crashed.stdout.split()
    assert len(undelivered) == 5

    restarted = LocalServer(fresh_db).start()
    try:
        for task_id in accepted:
            assert restarted.get(task_id)["status"] == "CREATED"
        assert restarted.get(running)["status"] == "RUNNING"  # until its deadline passes
        for task_id in undelivered:  # their TaskCreated reached demo.echo after the restart
            done = restarted.wait_for(task_id, TERMINAL)
            assert done["status"] == "SUCCESSFUL"
            assert done["result"] == done["input"]
    finally:
        restarted.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_graceful_shutdown_lets_running_processors_finish(fresh_db: Path, sig: int) -> None:
    server = LocalServer(fresh_db, ("--grace-seconds", "10")).start()
    task = server.submit("demo.sleep", {"seconds": 2, "steps": 2})
    server.wait_for(task["id"], {"RUNNING"})
    assert server.process is not None
    started = time.monotonic()
    server.process.send_signal(sig)
    time.sleep(0.5)
    assert server.process.poll() is None  # still finishing the processor...
    assert _refuses_connections(server.port)  # ...but no longer accepting
    assert server.stop(sig) == 0
    assert time.monotonic() - started < 8
    assert "outbox flushed" in server.log()

    restarted = LocalServer(fresh_db).start()
    try:
        done = restarted.get(task["id"])
        assert done["status"] == "SUCCESSFUL"  # finished within the grace period
    finally:
        restarted.stop()


def test_grace_period_bounds_the_shutdown(fresh_db: Path) -> None:
    server = LocalServer(fresh_db, ("--grace-seconds", "1")).start()
    task = server.submit("demo.sleep", {"seconds": 60, "steps": 1})
    server.wait_for(task["id"], {"RUNNING"})
    started = time.monotonic()
    assert server.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 6
    assert "still running" in server.log()


def test_open_streams_end_when_the_server_stops(fresh_db: Path) -> None:
    server = LocalServer(fresh_db).start()
    task = server.submit("no.processor")
    stream = server.events(f"/tasks/{task['id']}/events")
    name, _ = next(stream)
    assert name == "task"
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    assert list(stream) == []  # the server closed the stream instead of waiting on it
    assert server.stop() == 0


def test_only_loopback_addresses_count_as_local() -> None:
    from taskmanager.entrypoints.local.server import is_loopback

    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("192.168.1.10")
    assert not is_loopback("example.org")
