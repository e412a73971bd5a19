"""The sweeper handler: fails overdue tasks on a schedule."""

from __future__ import annotations

from datetime import UTC, datetime

from taskmanager.adapters.memory import InMemoryTaskRepository, ManualClock, UuidIdFactory
from taskmanager.domain.events import TaskUpdated
from taskmanager.domain.model import SubmitTask, TaskStatus
from taskmanager.domain.services import record_update, submit_task
from taskmanager.entrypoints import observability as obs
from taskmanager.entrypoints.bootstrap import Dependencies
from taskmanager.entrypoints.sweeper import create_handler
from tests.support import FakeLambdaContext, load_event

NOW = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)


def submit(deps: Dependencies, **fields: int) -> str:
    command = SubmitTask(type="render", **fields)
    return submit_task(command, owner="o", repo=deps.repo, clock=deps.clock, ids=deps.ids).task.id


def test_overdue_tasks_fail_with_timeout_heartbeat_timeout_and_start_timeout() -> None:
    clock = ManualClock(NOW)
    repo = InMemoryTaskRepository()
    deps = Dependencies(repo=repo, clock=clock, ids=UuidIdFactory())
    late = submit(deps, timeout_seconds=60)
    quiet = submit(deps, timeout_seconds=3600, heartbeat_seconds=30)
    fine = submit(deps, timeout_seconds=3600, heartbeat_seconds=300)
    unclaimed = submit(deps, timeout_seconds=3600, start_timeout_seconds=60)
    for task_id in (quiet, fine):
        update = TaskUpdated(task_id=task_id, status=TaskStatus.RUNNING, sequence=1)
        record_update(update, repo=repo, clock=clock)
    clock.advance(61)
    obs.metrics().clear_metrics()
    result = create_handler(lambda: deps)(load_event("scheduled_sweep.json"), FakeLambdaContext())
    assert result == {"timed_out": 1, "heartbeat_timed_out": 1, "start_timed_out": 1}
    codes = {}
    for task_id in (late, quiet, fine, unclaimed):
        task = repo.get(task_id)
        assert task is not None
        codes[task_id] = task.error.code if task.error else task.status.value
    assert codes == {
        late: "TIMEOUT",
        quiet: "HEARTBEAT_TIMEOUT",
        fine: "RUNNING",
        unclaimed: "START_TIMEOUT",
    }
    sums = {name: sum(m["Value"]) for name, m in obs.metrics().metric_set.items()}
    assert sums == {
        obs.TASKS_TIMED_OUT: 1,
        obs.TASKS_HEARTBEAT_TIMED_OUT: 1,
        obs.TASKS_START_TIMED_OUT: 1,
    }


def test_more_overdue_tasks_than_one_round_are_swept_in_rounds() -> None:
    clock = ManualClock(NOW)
    deps = Dependencies(repo=InMemoryTaskRepository(), clock=clock, ids=UuidIdFactory())
    for _ in range(5):
        submit(deps, timeout_seconds=1)
    clock.advance(2)
    handler = create_handler(lambda: deps, limit=2)
    assert handler({}, FakeLambdaContext()) == {
        "timed_out": 5,
        "heartbeat_timed_out": 0,
        "start_timed_out": 0,
    }
    assert handler({}, FakeLambdaContext()) == {
        "timed_out": 0,
        "heartbeat_timed_out": 0,
        "start_timed_out": 0,
    }


def test_the_sweeper_stops_starting_rounds_near_the_invocation_timeout() -> None:
    clock = ManualClock(NOW)
    deps = Dependencies(repo=InMemoryTaskRepository(), clock=clock, ids=UuidIdFactory())
    for _ in range(5):
        submit(deps, timeout_seconds=1)
    clock.advance(2)
    handler = create_handler(lambda: deps, limit=2)
    assert handler({}, FakeLambdaContext(remaining_ms=5_000)) == {
        "timed_out": 2,
        "heartbeat_timed_out": 0,
        "start_timed_out": 0,
    }
