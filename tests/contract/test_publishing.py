"""The one abstract suite of the ``EventPublisher`` port, on the in-memory bus and on
EventBridge (moto in-process, and moto server over HTTP), plus EventBridge's own limits:
batching by 10 entries and by 256 KB, per-entry retries (the publisher's), whole-request
retries (botocore's), and naming what was not delivered."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import boto3
import pytest
from moto import mock_aws

from taskmanager.adapters.eventbridge import (
    MAX_REQUEST_BYTES,
    EventBridgePublisher,
    batches,
    entry_size,
)
from taskmanager.adapters.memory import InMemoryEventBus
from taskmanager.domain.errors import PublishError
from taskmanager.domain.events import event_for
from taskmanager.domain.model import Task, TaskError, TaskStatus
from taskmanager.entrypoints.bootstrap import AWS_MAX_ATTEMPTS, client_config
from tests.contract.botocore_faults import FailedAttempts, record_backoffs

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from mypy_boto3_events.client import EventBridgeClient
    from mypy_boto3_sqs.client import SQSClient

    from taskmanager.domain.events import OutboundEvent
    from taskmanager.domain.ports import EventPublisher

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SOURCE = "taskmanager.test"


def make_task(n: int, status: TaskStatus = TaskStatus.CREATED, payload: Any = None) -> Task:
    return Task(
        id=f"00000000-0000-4000-8000-{n:012d}",
        owner="alice",
        type="report.render",
        status=status,
        input={"n": n} if payload is None else payload,
        version=1 if status is TaskStatus.CREATED else 2,
        created_at=NOW,
        updated_at=NOW + timedelta(seconds=n),
        deadline_at=NOW + timedelta(hours=1),
        result={"ok": n} if status is TaskStatus.SUCCESSFUL else None,
        error=TaskError(code="BOOM", message="no") if status is TaskStatus.FAILED else None,
    )


def make_events(count: int) -> list[OutboundEvent]:
    statuses = [TaskStatus.CREATED, TaskStatus.RUNNING, TaskStatus.SUCCESSFUL, TaskStatus.FAILED]
    return [event_for(make_task(n, statuses[n % 4])) for n in range(count)]


@dataclass
class Bus:
    publisher: EventPublisher
    received: Callable[[], list[tuple[str, dict[str, Any]]]]  # (detail-type, detail)


class PublishingContract:
    @pytest.fixture
    def bus(self) -> Bus:
        """Overridden by every adapter's test class."""
        raise TypeError(f"{type(self).__name__} must provide a bus fixture")

    def test_every_event_arrives_with_its_detail_type_and_detail(self, bus: Bus) -> None:
        events = make_events(12)
        bus.publisher.publish(events)
        received = bus.received()
        assert sorted(d["event_id"] for _, d in received) == sorted(e.event_id for e in events)
        by_id = {d["event_id"]: (t, d) for t, d in received}
        for event in events:
            detail_type, detail = by_id[event.event_id]
            assert detail_type == event.DETAIL_TYPE
            assert detail == json.loads(event.model_dump_json())

    def test_publishing_nothing_sends_nothing(self, bus: Bus) -> None:
        bus.publisher.publish([])
        assert bus.received() == []

    def test_a_large_event_is_delivered_whole(self, bus: Bus) -> None:
        event = event_for(make_task(1, payload={"blob": "x" * 120_000}))
        bus.publisher.publish([event])
        [(_, detail)] = bus.received()
        assert detail["input"]["blob"] == "x" * 120_000


class TestInMemoryBusPublishing(PublishingContract):
    @pytest.fixture
    def bus(self) -> Bus:
        memory = InMemoryEventBus()
        seen: list[tuple[str, dict[str, Any]]] = []
        memory.subscribe(lambda e: seen.append((e.DETAIL_TYPE, json.loads(e.model_dump_json()))))
        return Bus(memory, lambda: list(seen))


def eventbridge_to_queue(
    events: EventBridgeClient, sqs: SQSClient, bus_name: str
) -> Callable[[], list[tuple[str, dict[str, Any]]]]:
    """A bus with a rule that sends every event of SOURCE to a queue; returns a reader."""
    if bus_name != "default":
        events.create_event_bus(Name=bus_name)
    queue_url = sqs.create_queue(QueueName=f"{bus_name}-sink")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events.put_rule(
        Name="all", EventBusName=bus_name, EventPattern=json.dumps({"source": [SOURCE]})
    )
    events.put_targets(
        Rule="all", EventBusName=bus_name, Targets=[{"Id": "sink", "Arn": queue_arn}]
    )

    def received() -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        while True:
            messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not messages:
                return out
            for message in messages:
                envelope = json.loads(message["Body"])
                assert envelope["source"] == SOURCE
                out.append((envelope["detail-type"], envelope["detail"]))
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    return received


class TestEventBridgePublishing(PublishingContract):
    @pytest.fixture
    def bus(self) -> Iterator[Bus]:
        with mock_aws():
            events = boto3.client("events", region_name="us-east-1")
            sqs = boto3.client("sqs", region_name="us-east-1")
            reader = eventbridge_to_queue(events, sqs, "tasks")
            yield Bus(EventBridgePublisher(events, "tasks", SOURCE, base_delay=0), reader)


class TestEventBridgePublishingOverHTTP(PublishingContract):
    @pytest.fixture
    def bus(self, moto_server: str) -> Bus:
        events = boto3.client("events", region_name="us-east-1", endpoint_url=moto_server)
        sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=moto_server)
        name = f"tasks-http-{id(self)}"
        reader = eventbridge_to_queue(events, sqs, name)
        return Bus(EventBridgePublisher(events, name, SOURCE, base_delay=0), reader)


# --- EventBridge limits, retries and call counts ---------------------------------------------


class FlakyEvents:
    """Wraps a real events client; fails chosen entries the first ``times`` times each is
    sent (the failing entries are not forwarded, exactly as EventBridge drops them)."""

    def __init__(self, real: EventBridgeClient, fail: set[str], times: int) -> None:
        self.real = real
        self.fail = fail
        self.left: Counter[str] = Counter(dict.fromkeys(fail, times))
        self.requests: list[int] = []

    def put_events(self, Entries: list[Any]) -> dict[str, Any]:  # noqa: N803 (boto3's name)
        self.requests.append(len(Entries))
        results: list[dict[str, Any] | None] = []
        forward = []
        for entry in Entries:
            event_id = json.loads(entry["Detail"])["event_id"]
            if self.left[event_id] > 0:
                self.left[event_id] -= 1
                results.append({"ErrorCode": "InternalFailure", "ErrorMessage": "try again"})
            else:
                results.append(None)
                forward.append(entry)
        delivered = iter(self.real.put_events(Entries=forward)["Entries"] if forward else [])
        merged = [r if r is not None else dict(next(delivered)) for r in results]
        return {
            "FailedEntryCount": sum("ErrorCode" in r for r in merged),
            "Entries": merged,
        }


@pytest.fixture
def aws() -> Iterator[tuple[EventBridgeClient, Callable[[], list[tuple[str, dict[str, Any]]]]]]:
    with mock_aws():
        events = boto3.client("events", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        yield events, eventbridge_to_queue(events, sqs, "default")


def test_25_events_take_3_put_events_calls(aws: Any) -> None:
    events_client, received = aws
    calls: list[int] = []
    events_client.meta.events.register(
        "before-parameter-build.events.PutEvents",
        lambda params, **_: calls.append(len(params["Entries"])),
    )
    EventBridgePublisher(events_client, "default", SOURCE).publish(make_events(25))
    assert calls == [10, 10, 5]
    assert len(received()) == 25


def test_batches_stay_under_256_kb_in_total() -> None:
    publisher = EventBridgePublisher(cast("Any", None), "default", SOURCE)
    big = [event_for(make_task(n, payload={"blob": "y" * 100_000})) for n in range(5)]
    pairs = [(e.event_id, publisher.entry(e)) for e in big]
    split = batches(pairs)
    assert [len(b) for b in split] == [2, 2, 1]
    for batch in split:
        assert sum(entry_size(entry) for _, entry in batch) < MAX_REQUEST_BYTES


def test_entry_size_counts_as_eventbridge_documents() -> None:
    entry: Any = {
        "Time": NOW,
        "Source": "src",
        "DetailType": "Typé",
        "Detail": '{"a":"é"}',
        "Resources": ["arn:x", "arn:yy"],
        "EventBusName": "not counted",
    }
    assert entry_size(entry) == 14 + 3 + 5 + 10 + 5 + 6
    del entry["Time"], entry["Resources"]
    assert entry_size(entry) == 3 + 5 + 10


def _event_of_entry_size(size: int) -> OutboundEvent:
    publisher = EventBridgePublisher(cast("Any", None), "default", SOURCE)
    base = event_for(make_task(1, payload=""))
    padding = size - entry_size(publisher.entry(base))
    event = event_for(make_task(1, payload="z" * padding))
    assert entry_size(publisher.entry(event)) == size
    return event


def test_an_entry_just_under_the_limit_goes_alone_and_one_at_the_limit_is_refused(
    aws: Any,
) -> None:
    events_client, received = aws
    calls: list[int] = []
    events_client.meta.events.register(
        "before-parameter-build.events.PutEvents",
        lambda params, **_: calls.append(len(params["Entries"])),
    )
    publisher = EventBridgePublisher(events_client, "default", SOURCE, base_delay=0)
    small = make_events(2)
    fits = _event_of_entry_size(MAX_REQUEST_BYTES - 1)
    publisher.publish([small[0], fits, small[1]])
    assert calls == [1, 1, 1]
    assert len(received()) == 3

    at_limit = _event_of_entry_size(MAX_REQUEST_BYTES)
    calls.clear()
    with pytest.raises(PublishError) as raised:
        publisher.publish([small[0], at_limit])
    assert raised.value.failed_event_ids == [at_limit.event_id]
    assert calls == [1]
    assert [d["event_id"] for _, d in received()] == [small[0].event_id]


def test_failed_entries_are_retried_until_all_are_delivered(aws: Any) -> None:
    events_client, received = aws
    events = make_events(25)
    failing = {events[3].event_id, events[14].event_id, events[24].event_id}
    flaky = FlakyEvents(events_client, failing, times=2)
    sleeps: list[float] = []
    publisher = EventBridgePublisher(
        cast("EventBridgeClient", flaky), "default", SOURCE, sleep=sleeps.append
    )
    publisher.publish(events)
    assert flaky.requests == [10, 10, 5, 3, 3]
    assert len(sleeps) == 2
    delivered = Counter(d["event_id"] for _, d in received())
    assert delivered == Counter(e.event_id for e in events)  # each exactly once


def test_entries_still_failing_after_the_last_attempt_are_named(aws: Any) -> None:
    events_client, received = aws
    events = make_events(12)
    failing = {events[1].event_id, events[11].event_id}
    flaky = FlakyEvents(events_client, failing, times=10)
    publisher = EventBridgePublisher(
        cast("EventBridgeClient", flaky), "default", SOURCE, max_attempts=3, sleep=lambda _: None
    )
    with pytest.raises(PublishError) as raised:
        publisher.publish(events)
    assert raised.value.failed_event_ids == [events[1].event_id, events[11].event_id]
    assert "InternalFailure" in raised.value.message
    assert flaky.requests == [10, 2, 2, 2]
    delivered = {d["event_id"] for _, d in received()}
    assert delivered == {e.event_id for e in events} - failing


_buses = itertools.count()


@pytest.fixture
def aws_http(
    moto_server: str,
) -> tuple[EventBridgeClient, str, Callable[[], list[tuple[str, dict[str, Any]]]]]:
    """An events client retrying as the deployment's does, on moto server, a bus of its own
    and a reader of what the bus delivered."""
    events = boto3.client(
        "events", region_name="us-east-1", endpoint_url=moto_server, config=client_config()
    )
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=moto_server)
    name = f"retries-{next(_buses)}"
    return events, name, eventbridge_to_queue(events, sqs, name)


def test_a_throttled_request_is_retried_by_botocore_and_a_refused_one_is_not(
    aws_http: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    events_client, bus, received = aws_http
    backoffs = record_backoffs(monkeypatch)
    events = make_events(3)
    throttled = FailedAttempts(events_client, "PutEvents", [("ThrottlingException", 400)] * 2)
    EventBridgePublisher(events_client, bus, SOURCE, sleep=lambda _: None).publish(events)
    assert (throttled.calls, throttled.attempts) == (1, 3)  # one request, botocore's retries
    assert len(backoffs) == 2
    assert len(received()) == 3

    denied = FailedAttempts(events_client, "PutEvents", [("AccessDeniedException", 400)] * 99)
    with pytest.raises(PublishError) as raised:
        EventBridgePublisher(events_client, bus, SOURCE, sleep=lambda _: None).publish(events)
    assert (denied.calls, denied.attempts) == (1, 1)
    assert raised.value.failed_event_ids == [e.event_id for e in events]


def test_a_request_throttled_through_all_of_botocores_attempts_is_not_sent_again(
    aws_http: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    events_client, bus, received = aws_http
    record_backoffs(monkeypatch)
    events = make_events(3)
    throttled = FailedAttempts(events_client, "PutEvents", [("ThrottlingException", 400)] * 99)
    rounds: list[float] = []
    with pytest.raises(PublishError) as raised:
        EventBridgePublisher(events_client, bus, SOURCE, sleep=rounds.append).publish(events)
    assert (throttled.calls, throttled.attempts) == (1, AWS_MAX_ATTEMPTS)
    assert rounds == []  # no second round on top of the client's retries
    assert raised.value.failed_event_ids == [e.event_id for e in events]
    assert "ThrottlingException" in raised.value.message
    assert received() == []
