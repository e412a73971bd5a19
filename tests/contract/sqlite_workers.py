"""Code run in child processes by the SQLite multi-process tests (spawned, so importable)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from taskmanager.adapters.memory import ManualClock, UuidIdFactory
from taskmanager.adapters.sqlite import SQLiteTaskRepository
from taskmanager.domain.events import TaskUpdated
from taskmanager.domain.model import SubmitTask
from taskmanager.domain.services import dispatch_outbox, record_update, submit_task

if TYPE_CHECKING:
    from collections.abc import Sequence
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier

    from taskmanager.domain.events import OutboundEvent


def race(  # noqa: PLR0917 (multiprocessing passes arguments by position)
    path: str,
    task_id: str,
    worker: int,
    threads: int,
    barrier: Barrier,
    out: Queue[object],
) -> None:
    """``threads`` threads of this process each send one terminal update at the same moment."""
    repo = SQLiteTaskRepository(path)
    clock = ManualClock()
    results: list[tuple[str, str, str | None]] = []
    lock = threading.Lock()
    local = threading.Barrier(threads)

    def contender(n: int) -> None:
        status = "SUCCESSFUL" if (worker + n) % 2 else "FAILED"
        body: dict[str, object] = {"task_id": task_id, "status": status}
        if status == "FAILED":
            body["error"] = {"code": "LOST", "message": f"worker {worker}.{n}"}
        local.wait()
        result = record_update(TaskUpdated.model_validate(body), repo=repo, clock=clock)
        with lock:
            results.append((status, result.outcome.value, result.reason))

    workers = [threading.Thread(target=contender, args=(n,)) for n in range(threads)]
    barrier.wait()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    repo.close()
    out.put(results)


class _BlockingPublisher:
    """Tells the parent which events it is delivering, then never returns (until killed)."""

    def __init__(self, out: Queue[object]) -> None:
        self.out = out

    def publish(self, events: Sequence[OutboundEvent]) -> None:
        self.out.put(("publishing", [e.event_id for e in events]))
        threading.Event().wait()


def commit_then_die(path: str, lifecycles: int, out: Queue[object]) -> None:
    """Commit ``lifecycles`` lifecycles, report their event ids, start a dispatch that hangs
    between publish and mark_delivered; the parent SIGKILLs this process there."""
    repo = SQLiteTaskRepository(path)
    clock, ids = ManualClock(), UuidIdFactory()
    committed: list[str] = []
    for n in range(lifecycles):
        task = submit_task(
            SubmitTask(type="crash", input={"n": n}), owner="o", repo=repo, clock=clock, ids=ids
        ).task
        committed.append(f"{task.id}:1")
        for status, version in (("RUNNING", 2), ("SUCCESSFUL", 3)):
            record_update(
                TaskUpdated.model_validate({"task_id": task.id, "status": status}),
                repo=repo,
                clock=clock,
            )
            committed.append(f"{task.id}:{version}")
    # Deliver the first few for real, so the parent sees that delivered ones stay delivered.
    repo.mark_delivered([entry.position for entry in repo.pending(3)])
    out.put(("committed", committed))
    out.put(("delivered", committed[:3]))
    dispatch_outbox(repo, _BlockingPublisher(out), limit=5)
