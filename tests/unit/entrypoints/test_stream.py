"""The stream handler: DynamoDB stream batches -> outbound events, partial batch failures."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from taskmanager.adapters.memory import InMemoryEventBus
from taskmanager.domain.errors import PublishError
from taskmanager.entrypoints.stream import create_handler
from tests.support import FakeLambdaContext, load_event

if TYPE_CHECKING:
    from collections.abc import Sequence

    from taskmanager.domain.events import OutboundEvent

TASK = "0b6c7f43-5a1e-4d0f-9a55-3c1f4c2a9e01"


def run(publisher: Any, event: dict[str, Any] | None = None) -> list[str]:
    response = create_handler(lambda: publisher)(
        event or load_event("stream_batch.json"), FakeLambdaContext()
    )
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def test_each_committed_change_is_published_once_and_removals_yield_nothing() -> None:
    bus = InMemoryEventBus()
    assert run(bus) == []
    assert [(e.DETAIL_TYPE, e.event_id) for e in bus.published] == [
        ("TaskCreated", f"{TASK}:1"),
        ("TaskRunning", f"{TASK}:2"),
    ]
    created, running = bus.published
    assert created.model_dump()["input"] == {"rows": 10}
    assert running.progress is not None
    assert running.progress.message == "page 3 of 12"


def test_only_the_record_whose_event_failed_is_reported() -> None:
    bus = InMemoryEventBus()

    def refuse_running(event: OutboundEvent) -> None:
        raise RuntimeError("target throttled")

    bus.subscribe(refuse_running, detail_types=["TaskRunning"])
    assert run(bus) == ["100000000000000000002"]


class DownPublisher:
    def publish(self, events: Sequence[OutboundEvent]) -> None:
        raise PublishError([e.event_id for e in events], "EventBridge unavailable")


def test_when_nothing_is_delivered_every_record_with_events_is_reported() -> None:
    assert run(DownPublisher()) == ["100000000000000000001", "100000000000000000002"]


def test_a_record_with_an_unreadable_image_fails_alone() -> None:
    event = load_event("stream_batch.json")
    del event["Records"][1]["dynamodb"]["NewImage"]["version"]
    bus = InMemoryEventBus()
    assert run(bus, event) == ["100000000000000000002"]
    assert [e.DETAIL_TYPE for e in bus.published] == ["TaskCreated"]


def test_a_rewrite_that_did_not_move_the_version_publishes_nothing() -> None:
    event = load_event("stream_batch.json")
    record = event["Records"][1]["dynamodb"]
    record["NewImage"] = record["OldImage"]
    bus = InMemoryEventBus()
    assert run(bus, event) == []
    assert [e.DETAIL_TYPE for e in bus.published] == ["TaskCreated"]


@pytest.mark.parametrize("records", [[], None])
def test_an_empty_batch_is_fine(records: list[Any] | None) -> None:
    bus = InMemoryEventBus()
    assert run(bus, {"Records": records}) == []
    assert bus.published == []
