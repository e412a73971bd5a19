"""DynamoDB beyond the shared contract: calls per operation, retries (botocore's) and lost
answers, the table layout and the sparse index attributes, stream images, long filtered
lists."""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any, cast

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from taskmanager.adapters.dynamodb import (
    BY_DEADLINE,
    BY_HEARTBEAT,
    BY_OWNER,
    CREATE_TOKEN,
    NO_HEARTBEAT_SECONDS,
    DynamoDBTaskRepository,
    create_table,
    task_from_image,
    task_to_item,
)
from taskmanager.adapters.memory import ManualClock, UuidIdFactory
from taskmanager.domain.errors import InvalidCursorError, StorageError, TaskAlreadyFinishedError
from taskmanager.domain.events import TaskUpdated
from taskmanager.domain.model import SubmitTask, TaskStatus
from taskmanager.domain.ports import ListQuery
from taskmanager.domain.services import (
    UpdateOutcome,
    cancel_task,
    list_tasks,
    record_update,
    submit_task,
)
from taskmanager.entrypoints.bootstrap import AWS_MAX_ATTEMPTS, client_config
from taskmanager.processor import AwsTransport
from tests.contract.botocore_faults import (
    CountedAttempts,
    FailedAttempts,
    LostAnswers,
    record_backoffs,
)
from tests.contract.dynamodb_support import stream_events, table_name

if TYPE_CHECKING:
    from collections.abc import Iterator

    from botocore.awsrequest import AWSPreparedRequest
    from mypy_boto3_dynamodb.client import DynamoDBClient


@pytest.fixture
def client() -> Iterator[DynamoDBClient]:
    with mock_aws():
        yield boto3.client("dynamodb", region_name="us-east-1")


@pytest.fixture
def table(client: DynamoDBClient) -> str:
    name = table_name()
    create_table(client, name)
    return name


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def submit(repo: Any, clock: ManualClock, key: str | None = None, **body: Any) -> Any:
    command = SubmitTask.model_validate({"type": "report", "input": {"n": 1}, **body})
    return submit_task(
        command, owner="alice", repo=repo, clock=clock, ids=UuidIdFactory(), idempotency_key=key
    )


def send(repo: Any, clock: ManualClock, task_id: str, status: str, **fields: Any) -> Any:
    body = {"task_id": task_id, "status": status, **fields}
    return record_update(TaskUpdated.model_validate(body), repo=repo, clock=clock)


# --- AWS call accounting ------------------------------------------------------------------


def test_each_write_is_exactly_one_request_and_the_write_path_never_reads(
    client: DynamoDBClient, table: str, clock: ManualClock
) -> None:
    calls: Counter[str] = Counter()
    client.meta.events.register(
        "before-call.dynamodb", lambda model, **_: calls.update([model.name])
    )
    repo = DynamoDBTaskRepository(client, table)

    def step(action: Any, expected: dict[str, int]) -> Any:
        calls.clear()
        result = action()
        assert dict(calls) == expected
        return result

    task = step(lambda: submit(repo, clock, key="k").task, {"PutItem": 1})
    replay = step(lambda: submit(repo, clock, key="k"), {"PutItem": 1})
    assert replay.replayed
    for status, fields, outcome in [
        ("RUNNING", {"sequence": 1}, UpdateOutcome.APPLIED),
        ("RUNNING", {"sequence": 2, "progress": {"percent": 50}}, UpdateOutcome.APPLIED),
        ("RUNNING", {"sequence": 2, "progress": {"percent": 50}}, UpdateOutcome.DUPLICATE),
        ("RUNNING", {"sequence": 1}, UpdateOutcome.STALE),
        ("SUCCESSFUL", {"sequence": 3, "result": {"ok": True}}, UpdateOutcome.APPLIED),
        ("SUCCESSFUL", {"sequence": 3, "result": {"ok": True}}, UpdateOutcome.DUPLICATE),
        ("FAILED", {"error": {"code": "X", "message": "m"}}, UpdateOutcome.REJECTED),
        ("RUNNING", {}, UpdateOutcome.STALE),
    ]:
        result = step(
            lambda s=status, f=fields: send(repo, clock, task.id, s, **f), {"UpdateItem": 1}
        )
        assert result.outcome is outcome, (status, fields)
    with pytest.raises(TaskAlreadyFinishedError):
        step(lambda: cancel_task(task.id, owner="alice", repo=repo, clock=clock), {"UpdateItem": 1})
    unknown = step(lambda: send(repo, clock, "no-such-task", "RUNNING"), {"UpdateItem": 1})
    assert unknown.outcome is UpdateOutcome.REJECTED


# --- retries: botocore's, the only layer -----------------------------------------------------
# Faults are injected under botocore's retry handler (tests/contract/botocore_faults.py), on
# a client configured as the deployment's, against moto server.


def http_clients(moto_server: str) -> tuple[DynamoDBClient, Any]:
    """A DynamoDB client retrying as the deployment's does, and a streams client, on moto
    server."""
    client = boto3.client(
        "dynamodb", region_name="us-east-1", endpoint_url=moto_server, config=client_config()
    )
    streams = boto3.client("dynamodbstreams", region_name="us-east-1", endpoint_url=moto_server)
    return client, streams


@pytest.fixture
def http_table(moto_server: str) -> tuple[DynamoDBClient, Any, str]:
    client, streams = http_clients(moto_server)
    table = table_name()
    create_table(client, table)
    return client, streams, table


def test_throttled_writes_are_retried_by_botocore_then_succeed(
    http_table: Any, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _, table = http_table
    backoffs = record_backoffs(monkeypatch)
    puts = FailedAttempts(client, "PutItem", [("ProvisionedThroughputExceededException", 400)] * 2)
    updates = FailedAttempts(client, "UpdateItem", [("InternalServerError", 500)] * 3)
    repo = DynamoDBTaskRepository(client, table)
    task = submit(repo, clock).task
    assert send(repo, clock, task.id, "SUCCESSFUL").outcome is UpdateOutcome.APPLIED
    assert (puts.calls, puts.attempts) == (1, 3)
    assert (updates.calls, updates.attempts) == (1, 4)
    # Full jitter: throttling backs off from 1 s, a server fault from 25 ms, doubling.
    assert len(backoffs) == 5
    for delay, cap in zip(backoffs, [1, 2, 0.025, 0.05, 0.1], strict=True):
        assert 0 <= delay <= cap
    stored = repo.get(task.id)
    assert stored is not None
    assert (stored.status, stored.version) == (TaskStatus.SUCCESSFUL, 2)


@pytest.mark.parametrize(
    ("code", "status"), [("ThrottlingException", 400), ("InternalServerError", 500)]
)
def test_exhausted_retries_raise_storage_error_and_change_nothing(
    http_table: Any, clock: ManualClock, monkeypatch: pytest.MonkeyPatch, code: str, status: int
) -> None:
    client, _, table = http_table
    record_backoffs(monkeypatch)
    repo = DynamoDBTaskRepository(client, table)
    task = submit(repo, clock).task
    updates = FailedAttempts(client, "UpdateItem", [(code, status)] * 9)
    with pytest.raises(StorageError) as raised:
        send(repo, clock, task.id, "SUCCESSFUL")
    assert isinstance(raised.value.__cause__, ClientError)
    assert raised.value.details["attempts"] == AWS_MAX_ATTEMPTS == 4
    assert (updates.calls, updates.attempts) == (1, 4)
    assert repo.get(task.id) == task


def test_a_request_that_cannot_succeed_is_not_retried(moto_server: str, clock: ManualClock) -> None:
    client, _ = http_clients(moto_server)
    puts = CountedAttempts(client, "PutItem")
    repo = DynamoDBTaskRepository(client, "no-such-table")
    with pytest.raises(StorageError) as raised:
        submit(repo, clock)
    assert raised.value.details["code"] == "ResourceNotFoundException"
    assert (puts.calls, puts.attempts) == (1, 1)
    with pytest.raises(StorageError):
        repo.list_page(ListQuery(owner="alice", limit=5), clock.now())


@pytest.mark.parametrize("key", [None, "order-17"])
def test_a_submit_whose_answer_was_lost_after_the_write_is_created_not_refused(
    http_table: Any, key: str | None, clock: ManualClock
) -> None:
    client, streams, table = http_table
    lost = LostAnswers(client, "PutItem")
    repo = DynamoDBTaskRepository(client, table)

    submitted = submit(repo, clock, key=key)

    assert (lost.calls, lost.attempts) == (1, 2)  # the second attempt was botocore's retry
    assert not submitted.replayed
    assert repo.get(submitted.task.id) == submitted.task
    assert [e.event_id for e in stream_events(client, streams, table)] == [f"{submitted.task.id}:1"]


@pytest.mark.parametrize("key", [None, "order-17"])
def test_a_lost_submit_answer_is_ours_even_when_the_task_changed_before_the_retry(
    http_table: Any, moto_server: str, key: str | None, clock: ManualClock
) -> None:
    client, streams, table = http_table
    processor_repo = DynamoDBTaskRepository(
        boto3.client("dynamodb", endpoint_url=moto_server), table
    )

    def processor_starts(request: AWSPreparedRequest) -> None:
        task_id = json.loads(cast("bytes", request.body))["Item"]["task_id"]["S"]
        send(processor_repo, clock, task_id, "RUNNING", sequence=1)

    lost = LostAnswers(client, "PutItem", after_write=processor_starts)
    repo = DynamoDBTaskRepository(client, table)

    submitted = submit(repo, clock, key=key)

    assert (lost.calls, lost.attempts) == (1, 2)
    assert not submitted.replayed
    assert (submitted.task.status, submitted.task.version) == (TaskStatus.CREATED, 1)
    stored = repo.get(submitted.task.id)
    assert stored is not None
    assert (stored.status, stored.version) == (TaskStatus.RUNNING, 2)
    assert [e.event_id for e in stream_events(client, streams, table)] == [
        f"{submitted.task.id}:1",
        f"{submitted.task.id}:2",
    ]


def test_the_same_task_sent_by_another_request_is_refused_not_taken_for_ours(
    client: DynamoDBClient, table: str, clock: ManualClock
) -> None:
    # Two submits of one request at one clock reading make equal tasks; the second is
    # a replay (refused, the stored task returned), not a lost answer of the first.
    repo = DynamoDBTaskRepository(client, table)
    first = submit(repo, clock, key="order-17")
    again = submit(repo, clock, key="order-17")
    assert again.task == first.task
    assert (first.replayed, again.replayed) == (False, True)
    assert repo.create(first.task, clock.now()) == (False, first.task)


def test_a_lost_update_answer_is_classified_duplicate_not_applied_twice(
    http_table: Any, moto_server: str, clock: ManualClock
) -> None:
    client, _, table = http_table
    plain = DynamoDBTaskRepository(boto3.client("dynamodb", endpoint_url=moto_server), table)
    task = submit(plain, clock).task
    lost = LostAnswers(client, "UpdateItem")
    repo = DynamoDBTaskRepository(client, table)
    result = send(repo, clock, task.id, "SUCCESSFUL")
    assert result.outcome is UpdateOutcome.DUPLICATE
    assert (lost.calls, lost.attempts) == (1, 2)
    stored = plain.get(task.id)
    assert stored is not None
    assert (stored.status, stored.version) == (TaskStatus.SUCCESSFUL, 2)


# --- layout -------------------------------------------------------------------------------


def test_create_table_makes_the_documented_layout(client: DynamoDBClient, table: str) -> None:
    description = client.describe_table(TableName=table)["Table"]
    assert description["KeySchema"] == [{"AttributeName": "task_id", "KeyType": "HASH"}]
    assert description["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert description["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    indexes = {
        gsi["IndexName"]: (
            [(k["AttributeName"], k["KeyType"]) for k in gsi["KeySchema"]],
            gsi["Projection"]["ProjectionType"],
        )
        for gsi in description["GlobalSecondaryIndexes"]
    }
    assert indexes == {
        BY_OWNER: ([("owner", "HASH"), ("created_key", "RANGE")], "ALL"),
        BY_DEADLINE: ([("open_shard", "HASH"), ("deadline_epoch", "RANGE")], "ALL"),
        BY_HEARTBEAT: ([("hb_shard", "HASH"), ("heartbeat_due_epoch", "RANGE")], "ALL"),
    }
    types = {a["AttributeName"]: a["AttributeType"] for a in description["AttributeDefinitions"]}
    assert types == {
        "task_id": "S",
        "owner": "S",
        "created_key": "S",
        "open_shard": "S",
        "deadline_epoch": "N",
        "hb_shard": "S",
        "heartbeat_due_epoch": "N",
    }
    ttl = client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}


def test_sparse_index_attributes_follow_the_status(
    client: DynamoDBClient, table: str, clock: ManualClock
) -> None:
    repo = DynamoDBTaskRepository(client, table)

    def raw(task_id: str) -> dict[str, Any]:
        return dict(client.get_item(TableName=table, Key={"task_id": {"S": task_id}})["Item"])

    beating = submit(repo, clock, heartbeat_seconds=30, timeout_seconds=600).task
    plain = submit(repo, clock).task
    item = raw(beating.id)
    assert {"open_shard", "deadline_epoch"} <= item.keys()
    assert not {"hb_shard", "heartbeat_due_epoch", "expires_at"} & item.keys()
    assert float(item["deadline_epoch"]["N"]) == beating.deadline_at.timestamp()
    assert item["created_key"]["S"].endswith(f"#{beating.id}")

    clock.advance(5)
    send(repo, clock, beating.id, "RUNNING")
    send(repo, clock, plain.id, "RUNNING")
    item = raw(beating.id)
    assert {"open_shard", "deadline_epoch", "hb_shard", "heartbeat_due_epoch"} <= item.keys()
    assert float(item["heartbeat_due_epoch"]["N"]) == clock.now().timestamp() + 30
    assert float(raw(plain.id)["heartbeat_due_epoch"]["N"]) == pytest.approx(
        clock.now().timestamp() + NO_HEARTBEAT_SECONDS
    )

    send(repo, clock, beating.id, "SUCCESSFUL")
    item = raw(beating.id)
    assert not {"open_shard", "deadline_epoch", "hb_shard", "heartbeat_due_epoch"} & item.keys()
    stored = repo.get(beating.id)
    assert stored is not None
    assert stored.expires_at is not None
    assert int(item["expires_at"]["N"]) == int(stored.expires_at.timestamp())
    # The item is the task's encoding, plus the token of the request that created it.
    assert task_to_item(stored) == {k: v for k, v in item.items() if k != CREATE_TOKEN}


def test_stream_images_decode_to_the_stored_task(
    client: DynamoDBClient, table: str, clock: ManualClock
) -> None:
    repo = DynamoDBTaskRepository(client, table)
    task = submit(repo, clock, heartbeat_seconds=10).task
    send(repo, clock, task.id, "RUNNING", progress={"percent": 12.5, "message": "ü"}, sequence=4)
    stored = repo.get(task.id)
    assert stored is not None
    assert task_from_image(task_to_item(stored)) == stored
    with pytest.raises(StorageError):
        task_from_image({"task_id": {"S": "x"}})
    with pytest.raises(StorageError):
        task_from_image({**task_to_item(stored), "status": {"S": "PAUSED"}})


def test_a_processor_reads_the_status_the_repository_stored(
    client: DynamoDBClient, table: str, clock: ManualClock
) -> None:
    repo = DynamoDBTaskRepository(client, table)
    transport = AwsTransport(events_client=None, dynamodb_client=client, table_name=table)
    task = submit(repo, clock).task
    assert transport.status(task.id) is TaskStatus.CREATED
    send(repo, clock, task.id, "RUNNING")
    assert transport.status(task.id) is TaskStatus.RUNNING
    send(repo, clock, task.id, "SUCCESSFUL")
    assert transport.status(task.id) is TaskStatus.SUCCESSFUL
    assert transport.status("no-such-task") is None


# --- lists and the due query at scale -----------------------------------------------------


def test_filtered_list_pages_through_many_non_matching_items(
    client: DynamoDBClient, table: str, clock: ManualClock
) -> None:
    repo = DynamoDBTaskRepository(client, table)
    wanted = []
    for n in range(70):
        task = submit(repo, clock, type="rare" if n % 30 == 0 else "common").task
        if task.type == "rare":
            wanted.append(task.id)
        clock.advance(1)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = list_tasks(
            owner="alice", repo=repo, clock=clock, limit=2, type="rare", cursor=cursor
        )
        seen += [t.id for t in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == list(reversed(wanted))


def test_a_cursor_is_bound_to_its_owner(
    client: DynamoDBClient, table: str, clock: ManualClock
) -> None:
    repo = DynamoDBTaskRepository(client, table)
    for _ in range(3):
        submit(repo, clock)
        clock.advance(1)
    cursor = repo.list_page(ListQuery(owner="alice", limit=1), clock.now()).next_cursor
    assert cursor is not None
    with pytest.raises(InvalidCursorError):
        repo.list_page(ListQuery(owner="mallory", limit=1, cursor=cursor), clock.now())
    other_table = DynamoDBTaskRepository(client, "another-table")
    with pytest.raises(InvalidCursorError):
        other_table.list_page(ListQuery(owner="alice", limit=1, cursor=cursor), clock.now())


def test_due_across_shards_returns_the_earliest_up_to_the_limit(
    client: DynamoDBClient, table: str, clock: ManualClock
) -> None:
    repo = DynamoDBTaskRepository(client, table)
    tasks = [submit(repo, clock, timeout_seconds=100 + n).task for n in range(12)]
    clock.advance(200)
    due = repo.due(clock.now(), 5)
    assert [t.id for t in due] == [t.id for t in tasks[:5]]
    assert len(repo.due(clock.now(), 50)) == 12
