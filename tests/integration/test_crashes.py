"""Crashes: ``kill -9`` of ``taskmanager serve`` under load, and processors that crash.

The server is killed at random moments (seeded, so a failure replays) while clients submit
tasks. After every restart each task that got a 202 is there; at the end no task exists
twice, every task is terminal (its processor finished it, or the sweeper timed it out), and
the outbox is empty.
"""

from __future__ import annotations

import http.client
import json
import random
import textwrap
import threading
import time
from typing import TYPE_CHECKING, Any, Final

import pytest

from taskmanager.adapters.sqlite import SQLiteTaskRepository
from tests.e2e.local.harness import LocalServer

if TYPE_CHECKING:
    from pathlib import Path

CYCLES: Final = 5
CLIENTS: Final = 4
SEED: Final = 20261125
TERMINAL: Final = {"SUCCESSFUL", "FAILED"}


class Load:
    """Clients submitting tasks until told to stop; keeps every id that got a 202."""

    def __init__(self, port: int, rng: random.Random, cycle: int) -> None:
        self.port, self.rng, self.cycle = port, rng, cycle
        self.accepted: list[str] = []
        self.attempts = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._client, args=(n,)) for n in range(CLIENTS)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def _client(self, n: int) -> None:
        sent = 0
        while not self.stop.is_set():
            sent += 1
            if sent % 25 == 0:  # a few long ones, so a kill finds tasks RUNNING
                body: dict[str, Any] = {
                    "type": "demo.sleep",
                    "input": {"seconds": 0.3, "steps": 3},
                    "heartbeat_seconds": 2,
                    "timeout_seconds": 30,
                }
            else:
                body = {
                    "type": "demo.echo",
                    "input": [self.cycle, n, sent],
                    "heartbeat_seconds": 2,
                    "timeout_seconds": 30,
                }
            with self.lock:
                self.attempts += 1
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                connection.request(
                    "POST", "/tasks", json.dumps(body), {"Content-Type": "application/json"}
                )
                response = connection.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException):
                time.sleep(0.01)  # the server is gone: the answer is lost, not a 202
                continue
            finally:
                connection.close()
            if response.status == 202:
                with self.lock:
                    self.accepted.append(json.loads(payload)["id"])
            else:
                raise AssertionError(f"{response.status}: {payload!r}")
            time.sleep(0.005)  # a steady load, not a flood: processors keep up


def all_tasks(server: LocalServer) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = []
    cursor = None
    while True:
        path = "/tasks?limit=100" + (f"&cursor={cursor}" if cursor else "")
        page = server.request("GET", path).body
        tasks += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return tasks


@pytest.mark.timeout(900)
def test_kill_9_under_load_loses_nothing_and_everything_finishes(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    db = tmp_path / "taskmanager.db"
    accepted: list[str] = []
    attempts = 0
    args = ("--workers", "4", "--grace-seconds", "1")
    for cycle in range(CYCLES):
        server = LocalServer(db, args).start()
        # Everything accepted before every earlier kill is still there.
        for task_id in accepted:
            assert server.request("GET", f"/tasks/{task_id}").status == 200, task_id
        with Load(server.port, rng, cycle) as load:
            time.sleep(rng.uniform(0.4, 1.6))
            server.kill()
        assert load.accepted, "no request got through before the kill"
        accepted += load.accepted
        attempts += load.attempts

    server = LocalServer(db, args).start()
    try:
        deadline = time.monotonic() + 60
        while True:
            tasks = all_tasks(server)
            open_tasks = [t for t in tasks if t["status"] not in TERMINAL]
            if not open_tasks:
                break
            assert time.monotonic() < deadline, f"{len(open_tasks)} tasks never finished"
            time.sleep(0.2)
        ids = [t["id"] for t in tasks]
        assert len(ids) == len(set(ids)), "a task exists twice"
        assert set(accepted) <= set(ids), "an accepted task is missing"
        assert len(set(accepted)) == len(accepted)
        assert len(ids) <= attempts  # only requests that were sent can have made a task
        for task in tasks:
            if task["status"] == "FAILED":
                # Only a task whose processor was running when the server died fails (its
                # heartbeat stops); one that never started is handed to its processor again.
                assert task["error"]["code"] == "HEARTBEAT_TIMEOUT", task
                assert task["started_at"] is not None, task
            else:
                assert task["status"] == "SUCCESSFUL"
        time.sleep(0.5)
    finally:
        assert server.stop() == 0
    with SQLiteTaskRepository(db) as store:
        assert store.pending(1_000) == [], "the outbox did not drain"
    print(
        json.dumps(
            {
                "cycles": CYCLES,
                "accepted": len(accepted),
                "tasks": len(ids),
                "attempts": attempts,
                "successful": sum(t["status"] == "SUCCESSFUL" for t in tasks),
                "failed_by_sweeper": sum(t["status"] == "FAILED" for t in tasks),
                "failed_never_started": sum(
                    t["status"] == "FAILED" and t["started_at"] is None for t in tasks
                ),
            }
        )
    )


CRASHY: Final = textwrap.dedent(
    '''
    """Processors that crash, for the reliability tests."""
    import threading

    from taskmanager.processor import Processor

    def explode(task_input, ctx):
        ctx.progress(10, "starting")
        raise RuntimeError("the processor crashed: " + "x" * 10000)

    def hang(task_input, ctx):
        ctx.progress(10, "starting")
        threading.Event().wait(60)  # a worker that never comes back

    def bad_result(task_input):
        return {1, 2, 3}  # not JSON

    processors = [
        Processor("crash.raise", explode),
        Processor("crash.hang", hang),
        Processor("crash.result", bad_result),
    ]
    '''
)


def test_a_crashing_or_hung_processor_never_leaves_a_task_running(tmp_path: Path) -> None:
    (tmp_path / "crashy.py").write_text(CRASHY)
    server = LocalServer(
        tmp_path / "taskmanager.db",
        ("--processor", "crashy:processors", "--grace-seconds", "0.5", "--workers", "4"),
        extra_path=str(tmp_path),
    ).start()
    try:
        raised = server.submit("crash.raise", None)
        hung = server.submit("crash.hang", None, heartbeat_seconds=1, timeout_seconds=30)
        hung_no_heartbeat = server.submit("crash.hang", None, timeout_seconds=2)
        bad = server.submit("crash.result", None)

        failed = server.wait_for(raised["id"], TERMINAL)
        assert failed["status"] == "FAILED"
        assert failed["error"]["code"] == "PROCESSOR_ERROR"
        assert len(failed["error"]["message"].encode()) <= 4 * 1024
        assert server.wait_for(bad["id"], TERMINAL)["status"] == "FAILED"

        timed_out = server.wait_for(hung["id"], TERMINAL, timeout=10)
        assert (timed_out["status"], timed_out["error"]["code"]) == ("FAILED", "HEARTBEAT_TIMEOUT")
        deadline = server.wait_for(hung_no_heartbeat["id"], TERMINAL, timeout=10)
        assert (deadline["status"], deadline["error"]["code"]) == ("FAILED", "TIMEOUT")
        assert server.request("GET", "/tasks?limit=1").status == 200  # still serving
    finally:
        server.stop()


def test_a_server_killed_mid_task_runs_the_task_again_after_restart(
    tmp_path: Path,
) -> None:
    db = tmp_path / "taskmanager.db"
    server = LocalServer(db, ("--grace-seconds", "0.5")).start()
    task = server.submit(
        "demo.sleep", {"seconds": 4, "steps": 4}, heartbeat_seconds=2, timeout_seconds=60
    )
    server.wait_for(task["id"], {"RUNNING"})
    server.kill()  # the worker dies with the process, mid-task

    server = LocalServer(db, ("--grace-seconds", "0.5")).start()
    try:
        # The task left RUNNING goes to its processor again, as a second attempt, which
        # reports (and so beats) as the first did: it ends well before its heartbeat or
        # deadline could fail it.
        ended = server.wait_for(task["id"], TERMINAL, timeout=20)
        assert ended["status"] == "SUCCESSFUL", ended
        assert ended["result"]["attempt"] == 2
    finally:
        server.stop()
