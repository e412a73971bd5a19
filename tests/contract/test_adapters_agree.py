"""Differential tests: arbitrary sequences of updates, cancels and sweeps give the same
outcomes, the same stored task and the same events on SQLite and DynamoDB as on the
in-memory adapter (the reference)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from taskmanager.adapters.dynamodb import DynamoDBTaskRepository, create_table
from taskmanager.adapters.memory import InMemoryTaskRepository, ManualClock
from taskmanager.adapters.sqlite import SQLiteTaskRepository
from taskmanager.domain.errors import TaskManagerError
from taskmanager.domain.events import TaskUpdated
from taskmanager.domain.model import SubmitTask
from taskmanager.domain.services import (
    cancel_task,
    expire_overdue,
    record_update,
    submit_task,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from taskmanager.domain.ports import TaskRepository

_updates = st.fixed_dictionaries(
    {"status": st.sampled_from(["RUNNING", "SUCCESSFUL", "FAILED"])},
    optional={
        "sequence": st.integers(1, 4),
        "progress": st.builds(
            lambda p, m: {"percent": p, "message": m},
            st.integers(0, 100),
            st.none() | st.text(max_size=5),
        ),
        "result": st.none() | st.integers() | st.text(max_size=5),
    },
)
_steps = st.lists(
    st.one_of(
        _updates.map(lambda u: ("update", u)),
        st.just(("cancel", {})),
        st.integers(1, 40).map(lambda s: ("advance", {"seconds": s})),
    ),
    max_size=8,
)


class _FixedIds:
    def __init__(self, task_id: str) -> None:
        self.task_id = task_id

    def new_id(self) -> str:
        return self.task_id


def _body(task_id: str, update: dict[str, Any]) -> TaskUpdated | None:
    body = {"task_id": task_id, **update}
    if body["status"] != "RUNNING":
        body.pop("progress", None)
    if body["status"] != "SUCCESSFUL":
        body.pop("result", None)
    if body["status"] == "FAILED":
        body["error"] = {"code": "E", "message": "m"}
    return TaskUpdated.model_validate(body)


def _run(repo: TaskRepository, task_id: str, heartbeat: int | None, steps: list[Any]) -> list[Any]:
    """Play the steps on one repository; returns what every step observed."""
    clock = ManualClock()
    seen: list[Any] = []
    command = SubmitTask(type="t", input={"x": 1}, timeout_seconds=60, heartbeat_seconds=heartbeat)
    seen.append(submit_task(command, owner="o", repo=repo, clock=clock, ids=_FixedIds(task_id)))
    for kind, args in steps:
        if kind == "update":
            body = _body(task_id, args)
            result = record_update(body, repo=repo, clock=clock) if body else None
            seen.append(result)
        elif kind == "cancel":
            try:
                seen.append(cancel_task(task_id, owner="o", repo=repo, clock=clock))
            except TaskManagerError as exc:
                seen.append(type(exc).__name__)
        else:
            clock.advance(args["seconds"])
            # The repository is shared by every example: look only at this example's task.
            swept = expire_overdue(repo=repo, clock=clock, limit=1000)
            seen.append([t for t in swept if t.id == task_id])
        seen.append(repo.get(task_id))
    return seen


_task_ids = iter(f"00000000-0000-4000-8000-{n:012d}" for n in range(10**6))


@pytest.fixture(scope="module")
def sqlite_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SQLiteTaskRepository]:
    path: Path = tmp_path_factory.mktemp("agree") / "tasks.db"
    repo = SQLiteTaskRepository(path)
    yield repo
    repo.close()


@pytest.fixture(scope="module")
def dynamodb_repo() -> Iterator[DynamoDBTaskRepository]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "agree")
        yield DynamoDBTaskRepository(client, "agree")


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=_steps, heartbeat=st.none() | st.integers(5, 30))
def test_sqlite_agrees_with_memory(
    sqlite_repo: SQLiteTaskRepository, steps: list[Any], heartbeat: int | None
) -> None:
    task_id = next(_task_ids)
    memory = InMemoryTaskRepository()
    assert _run(sqlite_repo, task_id, heartbeat, steps) == _run(memory, task_id, heartbeat, steps)
    mine = [e for e in sqlite_repo.undelivered if e.event.id == task_id]
    assert [e.event for e in mine] == [e.event for e in memory.undelivered]
    sqlite_repo.mark_delivered([e.position for e in mine])


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=_steps, heartbeat=st.none() | st.integers(5, 30))
def test_dynamodb_agrees_with_memory(
    dynamodb_repo: DynamoDBTaskRepository, steps: list[Any], heartbeat: int | None
) -> None:
    task_id = next(_task_ids)
    memory = InMemoryTaskRepository()
    assert _run(dynamodb_repo, task_id, heartbeat, steps) == _run(memory, task_id, heartbeat, steps)
