"""Domain throughput beside the `transitions` library, measured in one run.

- full: submit -> RUNNING -> progress -> SUCCESSFUL through the use cases on the in-memory
  adapters, commands validated by the pydantic contracts, guarded writes, outbox events
  (built by the store without validating them again, as docs/performance.md says; drained as
  a dispatcher would);
- decide: the pure decision steps alone (plan the three updates, apply them to the record);
- baseline: `transitions`, one shared `Machine`, `add_model`, CREATED -> RUNNING -> SUCCESSFUL.

Run: `python benchmarks/domain.py` (or `make bench`). Prints a table and two ratio lines.
"""

from __future__ import annotations

import gc
import statistics
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from transitions import Machine

from taskmanager.adapters.memory import InMemoryTaskRepository, SystemClock, UuidIdFactory
from taskmanager.domain.events import TaskUpdated
from taskmanager.domain.model import SubmitTask, Task, TaskStatus, apply_change
from taskmanager.domain.services import new_task, plan_update, record_update, submit_task

if TYPE_CHECKING:
    from collections.abc import Callable

BATCH = 1_000  # lifecycles per fresh repository: memory stays bounded, as in a real service
ROUNDS = 15


def _rates(batches: dict[str, Callable[[], None]]) -> dict[str, float]:
    """Lifecycles per second of each batch: the median of ROUNDS timed runs after a warm-up.

    The runs are interleaved (A B C A B C ...) so that a slow spell of a shared machine
    weighs on every measure alike and the ratios stay meaningful."""
    for run_batch in batches.values():
        run_batch()
    rates: dict[str, list[float]] = {name: [] for name in batches}
    for _ in range(ROUNDS):
        for name, run_batch in batches.items():
            gc.collect()
            start = time.perf_counter()
            run_batch()
            rates[name].append(BATCH / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in rates.items()}


def full_batch() -> None:
    repo, clock, ids = InMemoryTaskRepository(), SystemClock(), UuidIdFactory()
    for _ in range(BATCH):
        # Bodies arrive as JSON text (HTTP body, SQS message), so they are parsed from text.
        command = SubmitTask.model_validate_json(
            b'{"type": "report.render", "input": {"rows": 10}}'
        )
        task_id = submit_task(command, owner="bench", repo=repo, clock=clock, ids=ids).task.id
        for body in (
            f'{{"task_id": "{task_id}", "status": "RUNNING", "sequence": 1}}',
            f'{{"task_id": "{task_id}", "status": "RUNNING", "sequence": 2, '
            f'"progress": {{"percent": 50}}}}',
            f'{{"task_id": "{task_id}", "status": "SUCCESSFUL", "sequence": 3, '
            f'"result": {{"ok": true}}}}',
        ):
            record_update(TaskUpdated.model_validate_json(body), repo=repo, clock=clock)
        repo.mark_delivered([entry.position for entry in repo.pending(10)])


_NOW = datetime(2026, 1, 1, tzinfo=UTC)
_COMMAND = SubmitTask(type="report.render", input={"rows": 10})
_UPDATES = (
    TaskUpdated(task_id="t", status=TaskStatus.RUNNING, sequence=1),
    TaskUpdated(task_id="t", status=TaskStatus.RUNNING, sequence=2, progress={"percent": 50}),
    TaskUpdated(task_id="t", status=TaskStatus.SUCCESSFUL, sequence=3, result={"ok": True}),
)


_CREATED: Final = new_task(_COMMAND, task_id="t", owner="bench", now=_NOW)


def decide_batch() -> None:
    """The three transitions decided and applied to the record (no repository, no events)."""
    for _ in range(BATCH):
        task: Task = _CREATED
        for update in _UPDATES:
            _guard, change = plan_update(update, _NOW)
            task = apply_change(task, change)
    assert task.status is TaskStatus.SUCCESSFUL


class _Model:
    pass


_MACHINE = Machine(
    states=["CREATED", "RUNNING", "SUCCESSFUL"],
    transitions=[["start", "CREATED", "RUNNING"], ["finish", "RUNNING", "SUCCESSFUL"]],
    initial="CREATED",
    auto_transitions=False,
)


def transitions_batch() -> None:
    for _ in range(BATCH):
        model = _Model()
        _MACHINE.add_model(model)
        model.start()  # type: ignore[attr-defined]
        model.finish()  # type: ignore[attr-defined]
        _MACHINE.remove_model(model)


def main() -> None:
    rates = _rates({"baseline": transitions_batch, "full": full_batch, "decide": decide_batch})
    baseline, full, decide = rates["baseline"], rates["full"], rates["decide"]
    print(f"{'measure':<44}{'lifecycles/s':>14}")
    print(f"{'transitions (baseline)':<44}{baseline:>14,.0f}")
    print(f"{'full: use cases + memory adapters + events':<44}{full:>14,.0f}")
    print(f"{'decide: pure domain decisions':<44}{decide:>14,.0f}")
    print(f"ratio full/transitions: {full / baseline:.2f}")
    print(f"ratio decide/transitions: {decide / baseline:.2f}")


if __name__ == "__main__":
    main()
