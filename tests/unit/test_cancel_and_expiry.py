"""cancel_task and expire_overdue: the failures the task manager writes itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from taskmanager.adapters.memory import InMemoryTaskRepository
from taskmanager.domain.errors import TaskAlreadyFinishedError, TaskNotFoundError
from taskmanager.domain.events import TaskFailed, TaskUpdated
from taskmanager.domain.model import TaskStatus
from taskmanager.domain.services import (
    Policy,
    UpdateOutcome,
    cancel_task,
    expire_overdue,
    record_update,
)

if TYPE_CHECKING:
    from datetime import datetime

    from taskmanager.domain.model import Task
    from tests.unit.conftest import World


# --- cancel ----------------------------------------------------------------------------------


@pytest.mark.parametrize("started", [False, True])
def test_cancel_fails_an_open_task_with_cancelled(world: World, started: bool) -> None:
    task = world.task()
    if started:
        world.update(task.id, "RUNNING", progress={"percent": 30})
    world.clock.advance(4)

    cancelled = cancel_task(task.id, owner="alice", repo=world.repo, clock=world.clock)

    assert cancelled == world.stored(task.id)
    assert cancelled.status is TaskStatus.FAILED
    assert cancelled.error is not None
    assert cancelled.error.code == "CANCELLED"
    assert cancelled.progress is None
    assert cancelled.finished_at == world.clock.now()
    assert cancelled.expires_at == world.clock.now() + Policy().retention
    last = world.repo.undelivered[-1].event
    assert isinstance(last, TaskFailed)
    assert last.error == cancelled.error
    assert last.version == cancelled.version


def test_cancel_of_another_owners_task_is_not_found_and_changes_nothing(world: World) -> None:
    task = world.task("alice")
    with pytest.raises(TaskNotFoundError):
        cancel_task(task.id, owner="bob", repo=world.repo, clock=world.clock)
    assert world.stored(task.id) == task
    assert len(world.repo.undelivered) == 1


def test_cancel_of_an_unknown_task_is_not_found(world: World) -> None:
    with pytest.raises(TaskNotFoundError):
        cancel_task("nope", owner="alice", repo=world.repo, clock=world.clock)


@pytest.mark.parametrize("status", ["SUCCESSFUL", "FAILED"])
def test_cancel_of_a_finished_task_is_a_conflict(world: World, status: str) -> None:
    task = world.task()
    fields = {"error": {"code": "X", "message": "m"}} if status == "FAILED" else {}
    world.update(task.id, status, **fields)
    before = world.stored(task.id)

    with pytest.raises(TaskAlreadyFinishedError) as raised:
        cancel_task(task.id, owner="alice", repo=world.repo, clock=world.clock)

    assert raised.value.code == "TASK_ALREADY_FINISHED"
    assert raised.value.status == status
    assert world.stored(task.id) == before


def test_cancel_twice_is_a_conflict_the_second_time(world: World) -> None:
    task = world.task()
    cancel_task(task.id, owner="alice", repo=world.repo, clock=world.clock)
    with pytest.raises(TaskAlreadyFinishedError):
        cancel_task(task.id, owner="alice", repo=world.repo, clock=world.clock)


def test_cancel_of_an_expired_task_is_not_found(world: World) -> None:
    task = world.task()
    cancel_task(task.id, owner="alice", repo=world.repo, clock=world.clock)
    world.clock.advance(Policy().retention_seconds)
    with pytest.raises(TaskNotFoundError):
        cancel_task(task.id, owner="alice", repo=world.repo, clock=world.clock)


# --- timeouts --------------------------------------------------------------------------------


def test_nothing_expires_before_the_deadline(world: World) -> None:
    task = world.task(timeout_seconds=60)
    world.clock.advance(59.999)
    assert expire_overdue(repo=world.repo, clock=world.clock) == []
    assert world.stored(task.id) == task


@pytest.mark.parametrize("started", [False, True])
def test_a_task_past_its_deadline_fails_with_timeout(world: World, started: bool) -> None:
    task = world.task(timeout_seconds=60)
    if started:
        world.update(task.id, "RUNNING")
    world.clock.advance(60)

    [expired] = expire_overdue(repo=world.repo, clock=world.clock)

    assert expired == world.stored(task.id)
    assert expired.status is TaskStatus.FAILED
    assert expired.error is not None
    assert expired.error.code == "TIMEOUT"
    assert "60" in expired.error.message
    assert world.outbox_types(task.id)[-1] == "TaskFailed"
    # A second sweep finds nothing more to do.
    assert expire_overdue(repo=world.repo, clock=world.clock) == []


def test_a_quiet_running_task_fails_with_heartbeat_timeout(world: World) -> None:
    task = world.task(timeout_seconds=600, heartbeat_seconds=30)
    world.update(task.id, "RUNNING")
    world.clock.advance(29)
    assert expire_overdue(repo=world.repo, clock=world.clock) == []

    world.clock.advance(1)
    [expired] = expire_overdue(repo=world.repo, clock=world.clock)

    assert expired.error is not None
    assert expired.error.code == "HEARTBEAT_TIMEOUT"
    assert "30" in expired.error.message


def test_each_update_restarts_the_heartbeat_window(world: World) -> None:
    task = world.task(timeout_seconds=600, heartbeat_seconds=30)
    world.update(task.id, "RUNNING")
    for _ in range(5):
        world.clock.advance(20)
        world.update(task.id, "RUNNING")
        assert expire_overdue(repo=world.repo, clock=world.clock) == []
    assert world.stored(task.id).status is TaskStatus.RUNNING


def test_heartbeat_does_not_apply_before_the_task_runs(world: World) -> None:
    task = world.task(timeout_seconds=600, heartbeat_seconds=30)
    world.clock.advance(300)
    assert expire_overdue(repo=world.repo, clock=world.clock) == []
    world.clock.advance(300)
    [expired] = expire_overdue(repo=world.repo, clock=world.clock)
    assert expired.id == task.id
    assert expired.error is not None
    assert expired.error.code == "TIMEOUT"


def test_the_deadline_wins_over_a_heartbeat_due_at_the_same_time(world: World) -> None:
    task = world.task(timeout_seconds=30, heartbeat_seconds=30)
    world.update(task.id, "RUNNING")
    world.clock.advance(30)
    [expired] = expire_overdue(repo=world.repo, clock=world.clock)
    assert expired.error is not None
    assert expired.error.code == "TIMEOUT"


def test_a_task_nobody_picks_up_fails_with_start_timeout(world: World) -> None:
    task = world.task(timeout_seconds=600, start_timeout_seconds=30)
    world.clock.advance(29)
    assert expire_overdue(repo=world.repo, clock=world.clock) == []
    world.clock.advance(1)
    [expired] = expire_overdue(repo=world.repo, clock=world.clock)
    assert expired == world.stored(task.id)
    assert expired.status is TaskStatus.FAILED
    assert expired.error is not None
    assert (expired.error.code, expired.error.message) == (
        "START_TIMEOUT",
        "no processor picked the task up within start_timeout_seconds (30)",
    )
    assert expired.finished_at == world.clock.now()


def test_the_start_timeout_no_longer_applies_once_the_task_runs(world: World) -> None:
    task = world.task(timeout_seconds=600, start_timeout_seconds=30)
    world.clock.advance(10)
    world.update(task.id, "RUNNING")
    world.clock.advance(100)
    assert expire_overdue(repo=world.repo, clock=world.clock) == []
    assert world.stored(task.id).status is TaskStatus.RUNNING


def test_the_deadline_wins_over_a_start_timeout_due_at_the_same_time(world: World) -> None:
    world.task(timeout_seconds=30, start_timeout_seconds=30)
    world.clock.advance(30)
    [expired] = expire_overdue(repo=world.repo, clock=world.clock)
    assert expired.error is not None
    assert expired.error.code == "TIMEOUT"


def test_finished_tasks_never_time_out(world: World) -> None:
    task = world.task(timeout_seconds=10)
    world.update(task.id, "SUCCESSFUL")
    world.clock.advance(100)
    assert expire_overdue(repo=world.repo, clock=world.clock) == []
    assert world.stored(task.id).status is TaskStatus.SUCCESSFUL


def test_expire_overdue_respects_its_limit_oldest_due_first(world: World) -> None:
    tasks = []
    for timeout in (50, 10, 30):
        tasks.append(world.task(timeout_seconds=timeout))
    world.clock.advance(60)
    first = expire_overdue(repo=world.repo, clock=world.clock, limit=2)
    assert [t.id for t in first] == [tasks[1].id, tasks[2].id]
    rest = expire_overdue(repo=world.repo, clock=world.clock, limit=2)
    assert [t.id for t in rest] == [tasks[0].id]


class _ProcessorRacesTheSweeper(InMemoryTaskRepository):
    """A real repository in which a processor's update lands right after the sweeper read
    the due tasks and before it writes, as can happen with a concurrent worker."""

    def __init__(self) -> None:
        super().__init__()
        self.update: TaskUpdated | None = None

    def due(self, now: datetime, limit: int) -> list[Task]:
        found = super().due(now, limit)
        if self.update is not None:
            update, self.update = self.update, None
            result = record_update(update, repo=self, clock=_Fixed(now))
            assert result.outcome is UpdateOutcome.APPLIED
        return found


class _Fixed:
    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now


@pytest.mark.parametrize(
    "body",
    [
        {"status": "SUCCESSFUL", "result": 1},
        {"status": "RUNNING", "progress": {"percent": 1}},
    ],
)
def test_an_update_arriving_between_due_and_apply_wins_over_the_sweeper(
    world: World, body: dict[str, object]
) -> None:
    repo = _ProcessorRacesTheSweeper()
    world.repo = repo
    task = world.task(timeout_seconds=600, heartbeat_seconds=30)
    world.update(task.id, "RUNNING")
    world.clock.advance(31)
    repo.update = TaskUpdated.model_validate({"task_id": task.id, **body})

    assert expire_overdue(repo=repo, clock=world.clock) == []

    stored = world.stored(task.id)
    assert stored.status is TaskStatus(str(body["status"]))
    assert stored.error is None
    assert stored.version == 3
    winner = {"SUCCESSFUL": "TaskSuccessful", "RUNNING": "TaskRunning"}[str(body["status"])]
    assert world.outbox_types(task.id) == ["TaskCreated", "TaskRunning", winner]
    # The update renewed the heartbeat: the next sweep has nothing to do either.
    assert expire_overdue(repo=repo, clock=world.clock) == []
