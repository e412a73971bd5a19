"""Embedding the domain in your own service: no AWS, no server, no database.

Run it: `python docs/examples/embedding.py`. A test runs it too (tests/unit/test_docs_examples.py).
"""

from __future__ import annotations

from taskmanager.adapters.memory import (
    InMemoryEventBus,
    InMemoryTaskRepository,
    SystemClock,
    UuidIdFactory,
)
from taskmanager.domain.events import OutboundEvent, TaskUpdated
from taskmanager.domain.model import SubmitTask, TaskStatus
from taskmanager.domain.services import (
    UpdateOutcome,
    dispatch_outbox,
    get_task,
    record_update,
    submit_task,
)


def main() -> None:
    repo, clock, ids = InMemoryTaskRepository(), SystemClock(), UuidIdFactory()
    bus = InMemoryEventBus()

    # A processor of "report.render": it learns of new tasks from TaskCreated events.
    def on_created(event: OutboundEvent) -> None:
        for update in (
            TaskUpdated(task_id=event.id, status=TaskStatus.RUNNING, sequence=1),
            TaskUpdated.model_validate(
                {
                    "task_id": event.id,
                    "status": "RUNNING",
                    "sequence": 2,
                    "progress": {"percent": 50, "message": "half way"},
                }
            ),
            TaskUpdated.model_validate(
                {
                    "task_id": event.id,
                    "status": "SUCCESSFUL",
                    "sequence": 3,
                    "result": {"pages": 12},
                }
            ),
        ):
            outcome = record_update(update, repo=repo, clock=clock)
            assert outcome.outcome is UpdateOutcome.APPLIED

    bus.subscribe(on_created, detail_types=["TaskCreated"], task_types=["report.render"])
    bus.subscribe(lambda e: print(f"event {e.DETAIL_TYPE:<15} {e.event_id}"))

    submitted = submit_task(
        SubmitTask(type="report.render", input={"month": "2026-10"}),
        owner="alice",
        repo=repo,
        clock=clock,
        ids=ids,
    )
    # The outbox holds every committed change's events until they are delivered.
    while dispatch_outbox(repo, bus):
        pass

    task = get_task(submitted.task.id, owner="alice", repo=repo, clock=clock)
    print(f"task {task.id} is {task.status} after {task.version} versions: {task.result}")


if __name__ == "__main__":
    main()
