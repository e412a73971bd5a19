"""The memory repository under real threads: racing terminal updates, exactly one wins."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from taskmanager.domain.events import TaskFailed, TaskSuccessful, TaskUpdated
from taskmanager.domain.model import TaskStatus
from taskmanager.domain.services import UpdateOutcome, UpdateResult, record_update

if TYPE_CHECKING:
    from tests.unit.conftest import World

THREADS = 16


def _race(world: World, updates: list[TaskUpdated]) -> list[UpdateResult]:
    barrier = threading.Barrier(len(updates))
    results: list[UpdateResult | None] = [None] * len(updates)

    def send(i: int) -> None:
        barrier.wait()
        results[i] = record_update(updates[i], repo=world.repo, clock=world.clock)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(updates))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


def test_sixteen_conflicting_terminal_updates_exactly_one_wins(world: World) -> None:
    for _ in range(20):  # several rounds: the interleavings differ each time
        task = world.task()
        updates = [
            TaskUpdated.model_validate(
                {"task_id": task.id, "status": "SUCCESSFUL", "result": i}
                if i % 2
                else {
                    "task_id": task.id,
                    "status": "FAILED",
                    "error": {"code": f"E{i}", "message": "x"},
                }
            )
            for i in range(THREADS)
        ]

        results = _race(world, updates)

        winners = [i for i, r in enumerate(results) if r.outcome is UpdateOutcome.APPLIED]
        assert len(winners) == 1
        winner = updates[winners[0]]
        stored = world.stored(task.id)
        assert stored.version == 2
        assert stored.status is winner.status
        assert stored.result == winner.result
        assert stored.error == winner.error
        for update, result in zip(updates, results, strict=True):
            if result.outcome is UpdateOutcome.APPLIED:
                continue
            expected = (
                UpdateOutcome.DUPLICATE
                if update.status is winner.status
                else UpdateOutcome.REJECTED
            )
            assert result.outcome is expected
            assert result.task == stored
        events = [e.event for e in world.repo.undelivered if e.event.id == task.id]
        assert [e.version for e in events] == [1, 2]
        terminal = events[-1]
        assert isinstance(terminal, TaskSuccessful | TaskFailed)
        assert terminal.status is stored.status
        assert terminal.event_id == f"{task.id}:2"


def test_racing_running_updates_each_apply_once_with_consecutive_versions(world: World) -> None:
    task = world.task()
    updates = [TaskUpdated(task_id=task.id, status=TaskStatus.RUNNING) for _ in range(THREADS)]

    results = _race(world, updates)

    assert all(r.outcome is UpdateOutcome.APPLIED for r in results)
    assert sorted(r.task.version for r in results if r.task) == list(range(2, THREADS + 2))
    assert world.stored(task.id).version == THREADS + 1
    versions = [e.event.version for e in world.repo.undelivered]
    assert versions == list(range(1, THREADS + 2))


def test_racing_sequenced_updates_never_let_an_older_one_overwrite_a_newer(world: World) -> None:
    task = world.task()
    updates = [
        TaskUpdated(task_id=task.id, status=TaskStatus.RUNNING, sequence=s)
        for s in range(1, THREADS + 1)
    ]

    results = _race(world, updates)

    applied = sorted(
        (r.task.version, u.sequence or 0)
        for u, r in zip(updates, results, strict=True)
        if r.outcome is UpdateOutcome.APPLIED and r.task is not None
    )
    sequences_in_commit_order = [sequence for _version, sequence in applied]
    assert sequences_in_commit_order == sorted(sequences_in_commit_order)
    assert len(set(sequences_in_commit_order)) == len(applied)
    assert all(r.outcome in {UpdateOutcome.APPLIED, UpdateOutcome.STALE} for r in results)
    stored = world.stored(task.id)
    assert stored.last_sequence == THREADS
    assert stored.version == 1 + len(applied)
    assert len(world.repo.undelivered) == stored.version
