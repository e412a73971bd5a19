"""submit_task: new tasks, deadlines, and the Idempotency-Key semantics of docs/design.md §5."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from taskmanager.domain.errors import (
    IdempotencyKeyReusedError,
    InvalidCommandError,
    StorageError,
    UnknownTaskTypeError,
)
from taskmanager.domain.events import TaskCreated
from taskmanager.domain.model import SubmitTask, Task, TaskStatus
from taskmanager.domain.services import Policy, idempotent_task_id, submit_task

if TYPE_CHECKING:
    from tests.unit.conftest import World


def test_submit_creates_a_task_with_version_one_and_a_deadline(world: World) -> None:
    result = world.submit(input={"rows": 3}, timeout_seconds=60, heartbeat_seconds=10)

    task = result.task
    assert not result.replayed
    assert task.status is TaskStatus.CREATED
    assert task.version == 1
    assert task.owner == "alice"
    assert task.input == {"rows": 3}
    assert task.created_at == task.updated_at == world.clock.now()
    assert task.deadline_at == world.clock.now() + timedelta(seconds=60)
    assert task.heartbeat_seconds == 10
    assert task.started_at is None
    assert task.finished_at is None
    assert task.expires_at is None
    assert uuid.UUID(task.id).version == 7  # time-ordered ids (UuidIdFactory)
    assert world.stored(task.id) == task


def test_submit_without_timeout_uses_the_policy_default(world: World) -> None:
    policy = Policy(default_timeout_seconds=120)
    result = submit_task(
        SubmitTask(type="t"),
        owner="alice",
        repo=world.repo,
        clock=world.clock,
        ids=world.ids,
        policy=policy,
    )
    assert result.task.deadline_at == world.clock.now() + timedelta(seconds=120)


def _submit(world: World, policy: Policy, **fields: object) -> Task:
    command = SubmitTask.model_validate({"type": "t", **fields})
    return submit_task(
        command, owner="alice", repo=world.repo, clock=world.clock, ids=world.ids, policy=policy
    ).task


def test_a_type_outside_the_policys_types_is_refused_and_nothing_is_stored(world: World) -> None:
    policy = Policy(task_types=frozenset({"t", "b.report"}))
    with pytest.raises(UnknownTaskTypeError) as raised:
        _submit(world, policy, type="a.report")
    assert raised.value.code == "UNKNOWN_TASK_TYPE"
    assert raised.value.details == {"field": "type", "known_types": ["b.report", "t"]}
    assert world.repo.undelivered == []
    assert _submit(world, policy, type="b.report").type == "b.report"
    assert _submit(world, Policy(), type="a.report").type == "a.report"  # None: any type


def test_start_timeout_is_the_tasks_own_or_the_policy_default_and_at_most_the_timeout(
    world: World,
) -> None:
    assert _submit(world, Policy()).start_timeout_seconds is None
    task = _submit(world, Policy(), timeout_seconds=60, start_timeout_seconds=60)
    assert task.start_timeout_seconds == 60
    assert task.start_due_at == world.clock.now() + timedelta(seconds=60)
    assert task.due_at == task.start_due_at == task.deadline_at
    defaulted = Policy(default_start_timeout_seconds=30)
    assert _submit(world, defaulted).start_timeout_seconds == 30
    assert _submit(world, defaulted, start_timeout_seconds=5).start_timeout_seconds == 5
    assert _submit(world, defaulted, timeout_seconds=20).start_timeout_seconds is None
    with pytest.raises(InvalidCommandError) as raised:
        _submit(world, Policy(), timeout_seconds=60, start_timeout_seconds=61)
    assert raised.value.details == {"field": "start_timeout_seconds"}
    with pytest.raises(ValueError, match="default_start_timeout_seconds"):
        Policy(default_start_timeout_seconds=0)


def test_submit_puts_one_task_created_event_with_the_input_in_the_outbox(world: World) -> None:
    task = world.task(input=[1, 2])

    [entry] = world.repo.undelivered
    assert isinstance(entry.event, TaskCreated)
    assert entry.event.event_id == f"{task.id}:1"
    assert entry.event.input == [1, 2]
    assert entry.event.type == "report.render"


def test_submits_without_key_always_create_new_tasks(world: World) -> None:
    first, second = world.task(), world.task()
    assert first.id != second.id
    assert len(world.repo.undelivered) == 2


def test_same_key_and_same_request_replays_the_same_task(world: World) -> None:
    first = world.submit(key="order-42", input={"a": 1})
    world.clock.advance(5)
    again = world.submit(key="order-42", input={"a": 1})

    assert not first.replayed
    assert again.replayed  # the API answers with `Idempotent-Replayed: true`
    assert again.task == first.task
    assert len(world.repo.undelivered) == 1  # no second task, no second event


def test_replay_returns_the_task_as_it_is_now(world: World) -> None:
    first = world.submit(key="k", input=1)
    world.update(first.task.id, "RUNNING")

    again = world.submit(key="k", input=1)

    assert again.replayed
    assert again.task.status is TaskStatus.RUNNING
    assert again.task.version == 2


def test_same_key_with_a_different_request_is_refused(world: World) -> None:
    first = world.submit(key="order-42", input={"a": 1})

    with pytest.raises(IdempotencyKeyReusedError) as raised:
        world.submit(key="order-42", input={"a": 2})

    assert raised.value.code == "IDEMPOTENCY_KEY_REUSED"
    assert raised.value.task_id == first.task.id
    assert world.stored(first.task.id) == first.task
    assert len(world.repo.undelivered) == 1


@pytest.mark.parametrize(
    "changed",
    [
        {"type": "other.type"},
        {"timeout_seconds": 61},
        {"heartbeat_seconds": 5},
        {"input": None},
    ],
)
def test_any_difference_in_the_request_counts_as_key_reuse(
    world: World, changed: dict[str, object]
) -> None:
    base = {"type": "t", "input": {"a": 1}, "timeout_seconds": 60}
    world.submit(key="k", **base)  # type: ignore[arg-type]
    with pytest.raises(IdempotencyKeyReusedError):
        world.submit(key="k", **{**base, **changed})  # type: ignore[arg-type]


def test_key_order_inside_the_input_does_not_change_the_fingerprint(world: World) -> None:
    world.submit(key="k", input={"a": 1, "b": 2})
    assert world.submit(key="k", input={"b": 2, "a": 1}).replayed


def test_another_owners_same_key_gets_a_different_task(world: World) -> None:
    alice = world.submit("alice", key="k", input=1)
    bob = world.submit("bob", key="k", input=1)

    assert not bob.replayed
    assert bob.task.id != alice.task.id
    assert bob.task.owner == "bob"
    assert len(world.repo.undelivered) == 2


def test_idempotent_ids_are_deterministic_per_owner_and_key() -> None:
    assert idempotent_task_id("alice", "k") == idempotent_task_id("alice", "k")
    assert idempotent_task_id("alice", "k") != idempotent_task_id("bob", "k")
    assert idempotent_task_id("alice", "k") != idempotent_task_id("alice", "k2")
    # The separator keeps ("a", "bc") and ("ab", "c") apart.
    assert idempotent_task_id("a", "bc") != idempotent_task_id("ab", "c")


def test_key_of_an_expired_task_starts_a_new_task(world: World) -> None:
    first = world.submit(key="k", input=1)
    world.update(first.task.id, "SUCCESSFUL")
    world.clock.advance(Policy().retention_seconds + 1)

    again = world.submit(key="k", input=2)

    assert not again.replayed
    assert again.task.id == first.task.id
    assert again.task.version == 1
    assert again.task.input == 2


def test_an_id_collision_without_key_is_a_storage_error(world: World) -> None:
    class SameId:
        def new_id(self) -> str:
            return "00000000-0000-4000-8000-000000000000"

    command = SubmitTask(type="t")
    submit_task(command, owner="alice", repo=world.repo, clock=world.clock, ids=SameId())
    with pytest.raises(StorageError):
        submit_task(command, owner="alice", repo=world.repo, clock=world.clock, ids=SameId())
