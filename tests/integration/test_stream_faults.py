"""Faults between the DynamoDB stream and EventBridge, on moto.

Real committed changes (DynamoDB adapter on moto) come off the table's stream and go through
the stream handler to EventBridge, which fails a random share of entries and throttles whole
requests. Lambda's stream retry is played faithfully: a batch whose response names failed
records is retried from the lowest failed sequence number. In the end every event is
delivered, an event is never delivered under two ids, and each response named exactly the
records whose events did not get through in that invocation.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import TYPE_CHECKING, Any, Final, cast

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from taskmanager.adapters.dynamodb import DynamoDBTaskRepository, create_table, task_from_image
from taskmanager.adapters.eventbridge import EventBridgePublisher
from taskmanager.adapters.memory import ManualClock, UuidIdFactory
from taskmanager.domain.events import TaskUpdated, events_for_change
from taskmanager.domain.model import SubmitTask
from taskmanager.domain.services import cancel_task, record_update, submit_task
from taskmanager.entrypoints.stream import create_handler
from tests.contract.test_publishing import SOURCE, eventbridge_to_queue
from tests.e2e.pump import _plain
from tests.support import FakeLambdaContext

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mypy_boto3_events.client import EventBridgeClient

TASKS: Final = 20
BATCH_SIZE: Final = 10
MAX_INVOCATIONS: Final = 400


class FaultyEventBridge:
    """A real (moto) events client behind a faulty network: each request is throttled with
    probability ``throttle`` (a request the client's own retries did not get through: the
    publisher does not send it again); otherwise each entry fails with probability ``fail``
    (and is not forwarded, as EventBridge drops it). Records what really got through."""

    def __init__(self, real: EventBridgeClient, rng: random.Random, fail: float, throttle: float):
        self.real, self.rng, self.fail, self.throttle = real, rng, fail, throttle
        self.delivered: list[str] = []
        self.requests = Counter[str]()

    def put_events(self, Entries: list[Any]) -> dict[str, Any]:  # noqa: N803 (boto3's name)
        if self.rng.random() < self.throttle:
            self.requests["throttled"] += 1
            error: Any = {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}
            raise ClientError(error, "PutEvents")
        self.requests["sent"] += 1
        results: list[dict[str, Any] | None] = []
        forward = []
        for entry in Entries:
            if self.rng.random() < self.fail:
                code = self.rng.choice(["InternalFailure", "ThrottlingException"])
                results.append({"ErrorCode": code, "ErrorMessage": "injected"})
                self.requests["failed_entries"] += 1
            else:
                results.append(None)
                forward.append(entry)
        answered = self.real.put_events(Entries=forward)["Entries"] if forward else []
        delivered = iter(answered)
        for entry in forward:
            self.delivered.append(json.loads(entry["Detail"])["event_id"])
        merged = [r if r is not None else dict(next(delivered)) for r in results]
        return {"FailedEntryCount": sum("ErrorCode" in r for r in merged), "Entries": merged}


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(dynamodb, "tasks")
        events = boto3.client("events", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        streams = boto3.client(
            "dynamodbstreams",
            region_name="us-east-1",
            endpoint_url="https://streams.dynamodb.us-east-1.amazonaws.com",
        )
        yield {
            "dynamodb": dynamodb,
            "events": events,
            "streams": streams,
            "received": eventbridge_to_queue(events, sqs, "default"),
        }


def make_changes(dynamodb: Any, rng: random.Random) -> None:
    """Lifecycles of TASKS tasks: each committed change is one stream record."""
    repo = DynamoDBTaskRepository(dynamodb, "tasks")
    clock = ManualClock()
    for n in range(TASKS):
        task = submit_task(
            SubmitTask(type="report", input={"n": n}),
            owner="alice",
            repo=repo,
            clock=clock,
            ids=UuidIdFactory(),
        ).task
        clock.advance(1)
        path = rng.choice(["success", "progress", "fail", "cancel"])
        if path == "cancel":
            cancel_task(task.id, owner="alice", repo=repo, clock=clock)
            continue
        if path == "progress":
            for step in (1, 2):
                update: dict[str, Any] = {"task_id": task.id, "status": "RUNNING"}
                update |= {"sequence": step, "progress": {"percent": step * 40}}
                record_update(TaskUpdated.model_validate(update), repo=repo, clock=clock)
        outcome = (
            {"status": "SUCCESSFUL", "result": {"n": n}}
            if path != "fail"
            else {"status": "FAILED", "error": {"code": "BROKEN", "message": "no"}}
        )
        record_update(
            TaskUpdated.model_validate({"task_id": task.id, "sequence": 9, **outcome}),
            repo=repo,
            clock=clock,
        )


def stream_records(dynamodb: Any, streams: Any) -> list[dict[str, Any]]:
    """The whole stream, shaped as Lambda hands it to the function."""
    arn = dynamodb.describe_table(TableName="tasks")["Table"]["LatestStreamArn"]
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            records += [{**_plain(r), "eventSourceARN": arn} for r in page["Records"]]
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return records


def expected_event_ids(record: dict[str, Any]) -> list[str]:
    change = record["dynamodb"]
    if "NewImage" not in change:
        return []
    old = task_from_image(change["OldImage"]) if "OldImage" in change else None
    return [e.event_id for e in events_for_change(old, task_from_image(change["NewImage"]))]


@pytest.mark.parametrize(
    ("seed", "fail", "throttle"),
    [(1, 0.3, 0.0), (5, 0.0, 0.5), (3, 0.25, 0.25), (4, 0.6, 0.2)],
)
def test_after_lambda_retries_every_event_is_delivered_and_failures_name_only_failed_records(
    aws: dict[str, Any], seed: int, fail: float, throttle: float
) -> None:
    rng = random.Random(seed)
    make_changes(aws["dynamodb"], rng)
    records = stream_records(aws["dynamodb"], aws["streams"])
    wanted = {
        sid: expected_event_ids(r) for r in records for sid in [r["dynamodb"]["SequenceNumber"]]
    }
    all_wanted = [e for ids in wanted.values() for e in ids]
    assert len(all_wanted) == len(set(all_wanted)) >= TASKS * 2

    faulty = FaultyEventBridge(aws["events"], rng, fail, throttle)
    publisher = EventBridgePublisher(
        cast("EventBridgeClient", faulty), "default", SOURCE, max_attempts=2, sleep=lambda _: None
    )
    handler = create_handler(lambda: publisher)

    position, invocations, reported = 0, 0, 0
    while position < len(records):
        invocations += 1
        assert invocations <= MAX_INVOCATIONS, "the stream never got past its faults"
        batch = records[position : position + BATCH_SIZE]
        before = len(faulty.delivered)
        response = handler({"Records": batch}, FakeLambdaContext())
        got_through = set(faulty.delivered[before:])
        failed = [item["itemIdentifier"] for item in response["batchItemFailures"]]
        reported += len(failed)
        undelivered = [
            r["dynamodb"]["SequenceNumber"]
            for r in batch
            if not set(wanted[r["dynamodb"]["SequenceNumber"]]) <= got_through
        ]
        assert failed == undelivered  # exactly the failed records, in stream order
        if not failed:
            position += len(batch)
        else:
            # Lambda checkpoints before the lowest failed record and retries from there.
            lowest = min(failed, key=int)
            position += next(
                n for n, r in enumerate(batch) if r["dynamodb"]["SequenceNumber"] == lowest
            )

    delivered = aws["received"]()
    ids = Counter(detail["event_id"] for _, detail in delivered)
    assert set(ids) == set(all_wanted)  # every event, and no event we did not expect
    by_id: dict[str, dict[str, Any]] = {}
    for _, detail in delivered:  # a redelivery is the same event, byte for byte
        assert by_id.setdefault(detail["event_id"], detail) == detail
    changes = Counter((d["id"], d["version"]) for d in by_id.values())
    assert max(changes.values()) == 1  # one change, one event_id
    assert faulty.requests["failed_entries"] + faulty.requests["throttled"] > 0  # faults happened
    print(
        json.dumps(
            {
                "seed": seed,
                "entry_failure_rate": fail,
                "throttle_rate": throttle,
                "records": len(records),
                "events": len(all_wanted),
                "invocations": invocations,
                "records_reported_failed": reported,
                "duplicates_delivered": sum(ids.values()) - len(ids),
                **faulty.requests,
            }
        )
    )
