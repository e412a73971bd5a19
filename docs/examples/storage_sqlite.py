"""SQLite storage: committed changes survive a crash in the outbox and are delivered on reopen.

Run it: `python docs/examples/storage_sqlite.py [DATABASE_FILE]` (a temporary file by
default). The test suite runs it too (tests/contract/test_storage_docs.py).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from taskmanager.adapters.memory import InMemoryEventBus, SystemClock, UuidIdFactory
from taskmanager.adapters.sqlite import SQLiteTaskRepository
from taskmanager.domain.events import TaskUpdated
from taskmanager.domain.model import SubmitTask
from taskmanager.domain.services import dispatch_outbox, list_tasks, record_update, submit_task


def main(path: Path) -> None:
    clock, ids = SystemClock(), UuidIdFactory()

    # A process writes: each change and its outbound event commit in one transaction.
    with SQLiteTaskRepository(path) as repo:
        for month in ("2026-09", "2026-10", "2026-11"):
            command = SubmitTask(type="report.render", input={"month": month})
            task = submit_task(command, owner="alice", repo=repo, clock=clock, ids=ids).task
        update = TaskUpdated.model_validate(
            {"task_id": task.id, "status": "SUCCESSFUL", "result": {"pages": 12}}
        )
        print("update:", record_update(update, repo=repo, clock=clock).outcome)
        print("pending after the writes:", len(repo.pending(100)))
        # ...and stops here before dispatching anything (a crash would do the same).

    # The next process opens the same file: nothing committed was lost.
    with SQLiteTaskRepository(path) as repo:
        bus = InMemoryEventBus()
        bus.subscribe(lambda event: print("delivered", event.DETAIL_TYPE, "version", event.version))
        while dispatch_outbox(repo, bus):
            pass
        print("pending after dispatch:", len(repo.pending(100)))

        # Newest first, two at a time, with the opaque cursor of the previous page.
        page = list_tasks(owner="alice", repo=repo, clock=clock, limit=2)
        while True:
            print("page:", [t.input["month"] for t in page.items])
            if page.next_cursor is None:
                break
            page = list_tasks(
                owner="alice", repo=repo, clock=clock, limit=2, cursor=page.next_cursor
            )


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp) / "tasks.db")
