"""record_update: every inbound update is applied, duplicate, stale or rejected
(docs/design.md §3)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from taskmanager.adapters.memory import InMemoryTaskRepository
from taskmanager.domain.events import TaskFailed, TaskRunning, TaskSuccessful, TaskUpdated
from taskmanager.domain.model import Progress, TaskError, TaskStatus
from taskmanager.domain.services import Policy, RejectReason, UpdateOutcome, record_update

if TYPE_CHECKING:
    from taskmanager.domain.model import Change, Guard
    from taskmanager.domain.ports import WriteResult
    from tests.unit.conftest import World

APPLIED, DUPLICATE, STALE, REJECTED = (
    UpdateOutcome.APPLIED,
    UpdateOutcome.DUPLICATE,
    UpdateOutcome.STALE,
    UpdateOutcome.REJECTED,
)
FAILURE = {"error": {"code": "BOOM", "message": "it broke"}}


# --- applied ---------------------------------------------------------------------------------


def test_running_update_starts_a_created_task(world: World) -> None:
    task = world.task()
    world.clock.advance(2)

    result = world.update(task.id, "RUNNING", sequence=1)

    assert result.outcome is APPLIED
    assert result.reason is None
    running = result.task
    assert running is not None
    assert running == world.stored(task.id)
    assert running.status is TaskStatus.RUNNING
    assert running.version == 2
    assert running.started_at == running.updated_at == world.clock.now()
    assert running.last_sequence == 1
    assert running.finished_at is None
    assert running.expires_at is None
    assert world.outbox_types(task.id) == ["TaskCreated", "TaskRunning"]


def test_progress_updates_apply_and_each_yields_a_task_running_event(world: World) -> None:
    task = world.task()
    world.update(task.id, "RUNNING", sequence=1)
    started = world.stored(task.id).started_at
    world.clock.advance(1)

    result = world.update(
        task.id, "RUNNING", sequence=2, progress={"percent": 40, "message": "rows"}
    )

    assert result.outcome is APPLIED
    stored = world.stored(task.id)
    assert stored.progress == Progress(percent=40, message="rows")
    assert stored.started_at == started  # started_at is set once
    assert stored.updated_at == world.clock.now()
    assert stored.version == 3
    last = world.repo.undelivered[-1].event
    assert isinstance(last, TaskRunning)
    assert last.progress == Progress(percent=40, message="rows")
    assert last.event_id == f"{task.id}:3"


def test_a_bare_heartbeat_keeps_the_stored_progress(world: World) -> None:
    task = world.task()
    world.update(task.id, "RUNNING", progress={"percent": 10})
    result = world.update(task.id, "RUNNING")
    assert result.outcome is APPLIED
    assert world.stored(task.id).progress == Progress(percent=10)
    assert world.stored(task.id).version == 3


def test_running_updates_without_sequence_always_apply(world: World) -> None:
    task = world.task()
    for _ in range(3):
        assert world.update(task.id, "RUNNING").outcome is APPLIED
    assert world.stored(task.id).version == 4
    assert world.stored(task.id).last_sequence is None


def test_running_update_without_sequence_applies_after_sequenced_ones(world: World) -> None:
    task = world.task()
    world.update(task.id, "RUNNING", sequence=5)
    assert world.update(task.id, "RUNNING").outcome is APPLIED
    assert world.stored(task.id).last_sequence == 5


def test_successful_update_finishes_the_task_with_its_result(world: World) -> None:
    task = world.task()
    world.update(task.id, "RUNNING", sequence=1, progress={"percent": 90})
    world.clock.advance(3)

    result = world.update(task.id, "SUCCESSFUL", sequence=2, result={"pages": 12})

    assert result.outcome is APPLIED
    done = world.stored(task.id)
    assert done.status is TaskStatus.SUCCESSFUL
    assert done.result == {"pages": 12}
    assert done.progress is None  # progress only while RUNNING
    assert done.error is None
    assert done.finished_at == world.clock.now()
    assert done.expires_at == world.clock.now() + Policy().retention
    assert done.version == 3
    last = world.repo.undelivered[-1].event
    assert isinstance(last, TaskSuccessful)
    assert last.result == {"pages": 12}


def test_a_fast_processor_may_skip_running(world: World) -> None:
    task = world.task()
    result = world.update(task.id, "SUCCESSFUL", result=7)
    assert result.outcome is APPLIED
    done = world.stored(task.id)
    assert done.started_at == done.finished_at == world.clock.now()
    assert world.outbox_types(task.id) == ["TaskCreated", "TaskSuccessful"]


def test_failed_update_fails_the_task_with_its_error(world: World) -> None:
    task = world.task()
    world.update(task.id, "RUNNING", progress={"percent": 5})

    result = world.update(task.id, "FAILED", **FAILURE)

    assert result.outcome is APPLIED
    failed = world.stored(task.id)
    assert failed.status is TaskStatus.FAILED
    assert failed.error == TaskError(code="BOOM", message="it broke")
    assert failed.progress is None
    assert failed.result is None
    last = world.repo.undelivered[-1].event
    assert isinstance(last, TaskFailed)
    assert last.error == failed.error


def test_retention_comes_from_the_policy(world: World) -> None:
    from taskmanager.domain.events import TaskUpdated
    from taskmanager.domain.services import record_update

    task = world.task()
    update = TaskUpdated.model_validate({"task_id": task.id, "status": "SUCCESSFUL"})
    policy = Policy(retention_seconds=60)
    record_update(update, repo=world.repo, clock=world.clock, policy=policy)
    assert world.stored(task.id).expires_at == world.clock.now() + timedelta(seconds=60)


# --- duplicate -------------------------------------------------------------------------------


def test_the_same_terminal_update_again_is_a_duplicate(world: World) -> None:
    task = world.task()
    world.update(task.id, "SUCCESSFUL", sequence=3, result=1)
    before, outbox = world.stored(task.id), world.repo.undelivered

    result = world.update(task.id, "SUCCESSFUL", sequence=3, result=1)

    assert result.outcome is DUPLICATE
    assert result.reason is None
    assert result.task == before
    assert world.stored(task.id) == before
    assert world.repo.undelivered == outbox


def test_the_same_terminal_status_without_sequence_is_a_duplicate(world: World) -> None:
    task = world.task()
    world.update(task.id, "FAILED", **FAILURE)
    assert world.update(task.id, "FAILED", **FAILURE).outcome is DUPLICATE
    assert world.stored(task.id).version == 2


def test_the_same_running_sequence_again_is_a_duplicate(world: World) -> None:
    task = world.task()
    world.update(task.id, "RUNNING", sequence=2, progress={"percent": 20})
    before, outbox = world.stored(task.id), world.repo.undelivered

    result = world.update(task.id, "RUNNING", sequence=2, progress={"percent": 20})

    assert result.outcome is DUPLICATE
    assert world.stored(task.id) == before
    assert world.repo.undelivered == outbox


# --- stale -----------------------------------------------------------------------------------


def test_an_update_with_a_lower_sequence_is_stale(world: World) -> None:
    task = world.task()
    world.update(task.id, "RUNNING", sequence=5, progress={"percent": 50})
    before, outbox = world.stored(task.id), world.repo.undelivered

    result = world.update(task.id, "RUNNING", sequence=4, progress={"percent": 40})

    assert result.outcome is STALE
    assert result.reason is None
    assert result.detail == "sequence 4 < 5"
    assert world.stored(task.id) == before
    assert world.repo.undelivered == outbox


def test_a_terminal_update_with_a_lower_sequence_is_stale(world: World) -> None:
    task = world.task()
    world.update(task.id, "RUNNING", sequence=5)
    assert world.update(task.id, "FAILED", sequence=3, **FAILURE).outcome is STALE
    assert world.stored(task.id).status is TaskStatus.RUNNING


def test_late_running_update_after_success_is_stale(world: World) -> None:
    task = world.task()
    world.update(task.id, "SUCCESSFUL", sequence=3)
    before, outbox = world.stored(task.id), world.repo.undelivered

    result = world.update(task.id, "RUNNING", sequence=4, progress={"percent": 99})

    assert result.outcome is STALE
    assert result.detail == "RUNNING after terminal"
    assert world.stored(task.id) == before
    assert world.stored(task.id).progress is None
    assert world.repo.undelivered == outbox


def test_running_update_without_sequence_after_failure_is_stale(world: World) -> None:
    task = world.task()
    world.update(task.id, "FAILED", **FAILURE)
    assert world.update(task.id, "RUNNING").outcome is STALE


# --- rejected --------------------------------------------------------------------------------


def test_a_different_terminal_outcome_for_a_finished_task_is_rejected(world: World) -> None:
    task = world.task()
    world.update(task.id, "SUCCESSFUL", sequence=2, result=1)
    before, outbox = world.stored(task.id), world.repo.undelivered

    result = world.update(task.id, "FAILED", sequence=3, **FAILURE)

    assert result.outcome is REJECTED
    assert result.reason is RejectReason.ALREADY_FINISHED
    assert result.detail is not None
    assert "SUCCESSFUL" in result.detail
    assert world.stored(task.id) == before
    assert world.repo.undelivered == outbox


def test_success_after_failure_is_rejected(world: World) -> None:
    task = world.task()
    world.update(task.id, "FAILED", **FAILURE)
    result = world.update(task.id, "SUCCESSFUL", result="late")
    assert result.outcome is REJECTED
    assert result.reason is RejectReason.ALREADY_FINISHED
    assert world.stored(task.id).status is TaskStatus.FAILED


def test_an_update_for_an_unknown_task_is_rejected(world: World) -> None:
    result = world.update("no-such-task", "RUNNING", sequence=1)
    assert result.outcome is REJECTED
    assert result.reason is RejectReason.UNKNOWN_TASK
    assert result.task is None
    assert world.repo.undelivered == []


def test_the_same_sequence_with_another_status_is_rejected(world: World) -> None:
    task = world.task()
    world.update(task.id, "RUNNING", sequence=2)
    before = world.stored(task.id)

    result = world.update(task.id, "SUCCESSFUL", sequence=2, result=1)

    assert result.outcome is REJECTED
    assert result.reason is RejectReason.SEQUENCE_REUSED
    assert world.stored(task.id) == before


def test_a_terminal_update_after_a_cancel_is_rejected_and_the_cancel_stands(
    world: World,
) -> None:
    from taskmanager.domain.services import cancel_task

    task = world.task()
    cancel_task(task.id, owner="alice", repo=world.repo, clock=world.clock)
    result = world.update(task.id, "SUCCESSFUL", result=1)
    assert result.outcome is REJECTED
    stored = world.stored(task.id)
    assert stored.error is not None
    assert stored.error.code == "CANCELLED"


# --- who may report ------------------------------------------------------------------------


def test_a_sender_allowed_other_types_is_rejected_and_nothing_changes(world: World) -> None:
    task = world.task()  # report.render
    before, outbox = world.stored(task.id), world.repo.undelivered

    result = world.update_from(frozenset({"text.wordcount"}), task.id, "SUCCESSFUL", result=1)

    assert result.outcome is REJECTED
    assert result.reason is RejectReason.SOURCE_NOT_ALLOWED
    assert result.detail is not None
    assert "report.render" in result.detail
    assert world.stored(task.id) == before
    assert world.repo.undelivered == outbox


def test_a_sender_allowed_the_task_type_reports_as_usual(world: World) -> None:
    task = world.task()
    allowed = frozenset({"text.wordcount", "report.render"})
    assert world.update_from(allowed, task.id, "RUNNING", sequence=1).outcome is APPLIED
    assert world.update_from(allowed, task.id, "RUNNING", sequence=1).outcome is DUPLICATE
    assert world.stored(task.id).status is TaskStatus.RUNNING


def test_a_refused_sender_repeating_a_finished_outcome_is_rejected_not_a_duplicate(
    world: World,
) -> None:
    task = world.task()
    world.update(task.id, "SUCCESSFUL", sequence=2, result=1)
    result = world.update_from(frozenset({"x"}), task.id, "SUCCESSFUL", sequence=2, result=1)
    assert result.outcome is REJECTED
    assert result.reason is RejectReason.SOURCE_NOT_ALLOWED


class CountingRepository(InMemoryTaskRepository):
    """Counts the guarded writes it is asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def apply(self, guard: Guard, change: Change) -> WriteResult:
        self.writes += 1
        return super().apply(guard, change)


def test_a_sender_allowed_no_type_is_rejected_without_a_write(world: World) -> None:
    repo = CountingRepository()
    task = world.task()
    repo.create(task, world.clock.now())
    update = TaskUpdated.model_validate({"task_id": task.id, "status": "RUNNING"})

    result = record_update(update, repo=repo, clock=world.clock, types=frozenset())

    assert (result.outcome, result.reason) == (REJECTED, RejectReason.SOURCE_NOT_ALLOWED)
    assert result.task is None
    assert repo.writes == 0
    assert repo.get(task.id) == task


def test_an_unknown_task_stays_unknown_for_a_sender_with_types(world: World) -> None:
    result = world.update_from(frozenset({"report.render"}), "no-such-task", "RUNNING")
    assert (result.outcome, result.reason) == (REJECTED, RejectReason.UNKNOWN_TASK)
