"""The outbox, dispatch_outbox, the in-memory bus and events_for_change."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from taskmanager.adapters.memory import InMemoryEventBus
from taskmanager.domain.errors import PublishError
from taskmanager.domain.events import (
    OutboundEvent,
    TaskCreated,
    TaskFailed,
    TaskRunning,
    TaskSuccessful,
    event_for,
    events_for_change,
)
from taskmanager.domain.model import TaskStatus
from taskmanager.domain.services import dispatch_outbox

if TYPE_CHECKING:
    from tests.unit.conftest import World


def _lifecycle(world: World, type: str = "report.render") -> str:
    task = world.task(type=type, input={"n": 1})
    world.update(task.id, "RUNNING", sequence=1)
    world.update(task.id, "SUCCESSFUL", sequence=2, result={"ok": True})
    return task.id


# --- events_for_change ------------------------------------------------------------------------


def test_a_new_task_yields_task_created_with_its_input(world: World) -> None:
    task = world.task(input={"rows": 3}, heartbeat_seconds=5)
    [event] = events_for_change(None, task)
    assert isinstance(event, TaskCreated)
    assert event.event_id == f"{task.id}:1"
    assert event.schema_version == "1"
    assert (event.id, event.type, event.status, event.version) == (
        task.id,
        task.type,
        TaskStatus.CREATED,
        1,
    )
    assert event.input == {"rows": 3}
    assert event.created_at == task.created_at
    assert event.deadline_at == task.deadline_at
    assert event.heartbeat_seconds == 5


def test_each_applied_change_yields_the_event_of_its_new_status(world: World) -> None:
    task = world.task()
    running = world.update(task.id, "RUNNING", progress={"percent": 1}).task
    assert running is not None
    [event] = events_for_change(task, running)
    assert isinstance(event, TaskRunning)
    assert event.progress == running.progress

    done = world.update(task.id, "SUCCESSFUL", result=[1]).task
    assert done is not None
    [event] = events_for_change(running, done)
    assert isinstance(event, TaskSuccessful)
    assert event.result == [1]
    assert event.finished_at == done.finished_at
    assert event.expires_at == done.expires_at

    other = world.task()
    failed = world.update(other.id, "FAILED", error={"code": "E", "message": "m"}).task
    assert failed is not None
    [event] = events_for_change(other, failed)
    assert isinstance(event, TaskFailed)
    assert event.error == failed.error


def test_a_record_whose_version_did_not_move_yields_nothing(world: World) -> None:
    task = world.task()
    assert events_for_change(task, task) == []
    running = world.update(task.id, "RUNNING").task
    assert running is not None
    assert events_for_change(running, task) == []


def test_event_for_validates_as_its_own_contract(world: World) -> None:
    task_id = _lifecycle(world)
    for entry in world.repo.undelivered:
        event = entry.event
        assert type(event).model_validate(event.model_dump()) == event
    assert world.stored(task_id) is not None
    assert event_for(world.stored(task_id)) == world.repo.undelivered[-1].event


# --- dispatch_outbox --------------------------------------------------------------------------


def test_dispatch_delivers_pending_events_in_commit_order_once(world: World) -> None:
    task_id = _lifecycle(world)
    seen: list[OutboundEvent] = []
    world.bus.subscribe(seen.append)

    assert dispatch_outbox(world.repo, world.bus) == 3
    assert dispatch_outbox(world.repo, world.bus) == 0

    assert [e.event_id for e in seen] == [f"{task_id}:{v}" for v in (1, 2, 3)]
    assert world.repo.undelivered == []


def test_dispatch_honours_its_limit(world: World) -> None:
    _lifecycle(world)
    assert dispatch_outbox(world.repo, world.bus, limit=2) == 2
    assert len(world.repo.undelivered) == 1
    assert dispatch_outbox(world.repo, world.bus, limit=2) == 1


def test_a_partial_publish_failure_keeps_only_the_undelivered_events(world: World) -> None:
    task_id = _lifecycle(world)
    seen: list[str] = []
    failures = {"left": 1}

    def flaky(event: OutboundEvent) -> None:
        if isinstance(event, TaskRunning) and failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("subscriber down")
        seen.append(event.event_id)

    world.bus.subscribe(flaky)

    with pytest.raises(PublishError) as raised:
        dispatch_outbox(world.repo, world.bus)

    assert raised.value.failed_event_ids == [f"{task_id}:2"]
    assert raised.value.code == "PUBLISH_FAILED"
    assert [e.event.event_id for e in world.repo.undelivered] == [f"{task_id}:2"]
    # The next dispatch delivers it: at least once.
    assert dispatch_outbox(world.repo, world.bus) == 1
    assert seen == [f"{task_id}:1", f"{task_id}:3", f"{task_id}:2"]
    assert world.repo.undelivered == []


class _BrokenPublisher:
    def publish(self, events: object) -> None:
        raise PublishError(["x"], "not a delivery at all")


def test_a_failure_naming_no_pending_event_marks_the_whole_batch(world: World) -> None:
    _lifecycle(world)
    with pytest.raises(PublishError):
        dispatch_outbox(world.repo, _BrokenPublisher())
    assert world.repo.undelivered == []


def test_an_error_other_than_publish_error_keeps_everything(world: World) -> None:
    _lifecycle(world)

    class Crashing:
        def publish(self, events: object) -> None:
            raise OSError("network gone")

    with pytest.raises(OSError, match="network gone"):
        dispatch_outbox(world.repo, Crashing())
    assert len(world.repo.undelivered) == 3


# --- InMemoryEventBus -------------------------------------------------------------------------


def test_bus_delivers_by_detail_type(world: World) -> None:
    _lifecycle(world)
    created: list[str] = []
    finished: list[str] = []
    world.bus.subscribe(lambda e: created.append(e.DETAIL_TYPE), detail_types=["TaskCreated"])
    world.bus.subscribe(
        lambda e: finished.append(e.DETAIL_TYPE), detail_types=["TaskSuccessful", "TaskFailed"]
    )
    dispatch_outbox(world.repo, world.bus)
    assert created == ["TaskCreated"]
    assert finished == ["TaskSuccessful"]


def test_bus_delivers_by_task_type(world: World) -> None:
    _lifecycle(world, type="a")
    _lifecycle(world, type="b")
    got: list[tuple[str, str]] = []
    world.bus.subscribe(lambda e: got.append((e.type, e.DETAIL_TYPE)), task_types=["b"])
    world.bus.subscribe(
        lambda e: got.append(("both", e.type)), detail_types=["TaskCreated"], task_types=["a", "b"]
    )
    dispatch_outbox(world.repo, world.bus)
    assert got == [
        ("both", "a"),
        ("b", "TaskCreated"),
        ("both", "b"),
        ("b", "TaskRunning"),
        ("b", "TaskSuccessful"),
    ]


def test_unsubscribed_handlers_receive_nothing_more(world: World) -> None:
    got: list[str] = []
    sub = world.bus.subscribe(lambda e: got.append(e.event_id))
    _lifecycle(world)
    dispatch_outbox(world.repo, world.bus, limit=1)
    world.bus.unsubscribe(sub)
    dispatch_outbox(world.repo, world.bus)
    assert len(got) == 1
    assert len(world.bus.published) == 3


def test_bus_with_no_subscribers_accepts_every_event() -> None:
    bus = InMemoryEventBus()
    bus.publish([])
    assert bus.published == []


def test_subscribing_and_unsubscribing_change_routes_already_used(world: World) -> None:
    first, second, third = (world.task(type="t", input={}) for _ in range(3))
    bus = InMemoryEventBus(record=False)
    early: list[str] = []
    early_sub = bus.subscribe(lambda e: early.append(e.id), task_types=["t"])
    bus.publish([event_for(first)])  # the route of (TaskCreated, t) is found and kept
    late: list[str] = []
    bus.subscribe(lambda e: late.append(e.id), detail_types=["TaskCreated"])
    bus.publish([event_for(second)])
    bus.unsubscribe(early_sub)
    bus.publish([event_for(third)])
    assert early == [first.id, second.id]
    assert late == [second.id, third.id]
