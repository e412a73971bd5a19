"""Stopping and crashing `taskmanager serve`: graceful shutdown on SIGTERM/SIGINT, and after
SIGKILL every accepted task is still there and undelivered `TaskCreated` are delivered."""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from typing import TYPE_CHECKING

import pytest

from tests.e2e.local.harness import LocalServer, cli_env, free_port

if TYPE_CHECKING:
    from pathlib import Path

TERMINAL = {"SUCCESSFUL", "FAILED"}
#: For servers given tasks no processor takes (``no.processor``), which stay CREATED.
ANY_TYPE = ("--accept-any-type",)

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
    server = LocalServer(fresh_db, ANY_TYPE).start()
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
        # Its processor died with the server: handed to it again, it runs on (30 s) ...
        assert restarted.get(running)["status"] == "RUNNING"
        assert restarted.request("POST", f"/tasks/{running}/cancel").status == 202
        for task_id in undelivered:  # their TaskCreated reached demo.echo after the restart
            done = restarted.wait_for(task_id, TERMINAL)
            assert done["status"] == "SUCCESSFUL"
            assert done["result"] == done["input"]
    finally:
        restarted.stop()


def test_a_task_running_at_a_crash_is_resumed_after_the_restart(fresh_db: Path) -> None:
    server = LocalServer(fresh_db).start()
    # Default deadline: an hour. Six steps of 0.4 s; killed after the second.
    task = server.submit("demo.sleep", {"seconds": 2.4, "steps": 6})
    deadline = time.monotonic() + 15
    while (server.get(task["id"])["progress"] or {}).get("percent", 0) < 33:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.02)
    server.kill()
    restarted = LocalServer(fresh_db).start()
    try:
        done = restarted.wait_for(task["id"], TERMINAL, timeout=10)
        assert done["status"] == "SUCCESSFUL", done
        assert done["result"]["attempt"] == 2
        # It saw the earlier attempt's progress and did not sleep those steps again.
        assert 2 <= done["result"]["resumed_after"] < 6
        assert done["result"]["steps"] == 6
        assert done["finished_at"] < task["deadline_at"]
        assert "handed 1 task(s) left RUNNING to their processors again" in restarted.log()
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
    server = LocalServer(fresh_db, ANY_TYPE).start()
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


def _serve(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskmanager.entrypoints.cli", "serve", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=cli_env(),
        timeout=60,
        check=False,
    )


def test_a_taken_port_is_one_line_before_anything_starts(fresh_db: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _serve("--port", str(port), "--db", str(fresh_db), cwd=fresh_db.parent)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"taskmanager serve: error: cannot listen on 127.0.0.1:{port}: address already in "
        "use; stop the server using it or choose another --port\n"
    )


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("demo.fail", "the demo processors are always on, no --processor needed"),
        ("no_such_module:processor", "cannot import no_such_module: ModuleNotFoundError"),
        ("json:no_such_name", "json has no attribute no_such_name"),
        ("json:dumps", "names <function dumps"),
    ],
)
def test_a_bad_processor_is_one_line_naming_it(fresh_db: Path, spec: str, problem: str) -> None:
    port = str(free_port())
    result = _serve("--port", port, "--db", str(fresh_db), "--processor", spec, cwd=fresh_db.parent)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"taskmanager serve: error: --processor {spec}: {problem}")
    assert len(result.stderr.splitlines()) == 1


def test_expected_processor_failures_log_one_line(fresh_db: Path) -> None:
    server = LocalServer(fresh_db).start()
    try:
        task = server.submit("demo.fail", {"code": "OUT_OF_PAPER", "message": "tray 2"})
        server.wait_for(task["id"], TERMINAL)
    finally:
        server.stop()
    log = server.log()
    assert f"task {task['id']} failed: OUT_OF_PAPER: tray 2" in log
    assert "Traceback" not in log


def test_a_second_ctrl_c_still_runs_the_shutdown(fresh_db: Path) -> None:
    server = LocalServer(fresh_db, ("--grace-seconds", "2", *ANY_TYPE)).start()
    sleeping = server.submit("demo.sleep", {"seconds": 60, "steps": 60})
    server.wait_for(sleeping["id"], {"RUNNING"})
    accepted = [server.submit("no.processor", {"n": n})["id"] for n in range(5)]
    assert server.process is not None
    # A request still in flight (its body never comes) keeps uvicorn waiting for open
    # connections; a second Ctrl-C then forces its exit before the app's shutdown began.
    with socket.create_connection(("127.0.0.1", server.port)) as pending:
        pending.sendall(
            b"POST /tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        time.sleep(0.2)
        server.process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 10
        while "Waiting for connections to close" not in server.log():
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.05)
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(20) == 0
    log = server.log()
    assert "still running after 2 s" in log  # the grace period was kept
    assert "Traceback" not in log
    assert "outbox flushed" in log
    with sqlite3.connect(fresh_db) as db:
        assert db.execute("SELECT count(*) FROM outbox").fetchone() == (0,)

    restarted = LocalServer(fresh_db).start()
    try:
        for task_id in accepted:
            assert restarted.get(task_id)["status"] == "CREATED"
    finally:
        restarted.stop()
