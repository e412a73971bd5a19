"""DynamoDB beyond the shared contract: calls per operation, retries (botocore's) and lost
answers, the table layout and the sparse index attributes, stream images, long filtered
lists."""

from __future__ import annotations

import itertools
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
from taskmanager.domain.ports import ListQuery, WriteResult
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
    PartialBatchReads,
    record_backoffs,
)
from tests.contract.dynamodb_capacity import entry, indexes_of, projecting_all, write_units
from tests.contract.dynamodb_support import stream_events, table_name

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

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


def counted_requests(client: DynamoDBClient) -> Callable[[Callable[..., Any], dict[str, int]], Any]:
    """``step(action, expected)``: run ``action`` and assert the DynamoDB requests it sent,
    by operation name, counted through botocore's event hooks."""
    calls: Counter[str] = Counter()
    client.meta.events.register(
        "before-call.dynamodb", lambda model, **_: calls.update([model.name])
    )

    def step(action: Callable[..., Any], expected: dict[str, int]) -> Any:
        calls.clear()
        result = action()
        assert dict(calls) == expected
        return result

    return step


def test_each_write_is_exactly_one_request_and_the_write_path_never_reads(
    client: DynamoDBClient, table: str, clock: ManualClock
) -> None:
    step = counted_requests(client)
    repo = DynamoDBTaskRepository(client, table)

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


def test_lists_and_the_due_query_read_their_index_then_the_tasks_by_key(
    client: DynamoDBClient, table: str, clock: ManualClock
) -> None:
    step = counted_requests(client)
    repo = DynamoDBTaskRepository(client, table)

    first = ListQuery(owner="alice", limit=2)
    assert step(lambda: repo.list_page(first, clock.now()), {"Query": 1}).items == []
    assert step(lambda: repo.due(clock.now(), 10), {"Query": 8}) == []
    tasks = [submit(repo, clock, timeout_seconds=60).task for _ in range(3)]
    page = step(lambda: repo.list_page(first, clock.now()), {"Query": 1, "BatchGetItem": 1})
    assert len(page.items) == 2
    clock.advance(61)
    due = step(lambda: repo.due(clock.now(), 10), {"Query": 8, "BatchGetItem": 1})
    assert sorted(t.id for t in due) == sorted(t.id for t in tasks)
    # Raising the shard count: two queries per shard, and the tasks written with four
    # shards keep theirs, all of which the eight are.
    eight_shards = DynamoDBTaskRepository(client, table, due_shards=8)
    assert step(lambda: eight_shards.due(clock.now(), 10), {"Query": 16, "BatchGetItem": 1}) == due


def _index_entries(client: DynamoDBClient, table: str, item: dict[str, Any]) -> dict[str, Any]:
    """What each index of ``table`` holds for the stored ``item``, read back by querying the
    index on the item's own key values (None where the sparse index has no entry for it)."""
    held: dict[str, Any] = {}
    for index in indexes_of(client.describe_table(TableName=table)["Table"]):
        held[index.name] = None
        if not all(key in item for key in index.keys):
            continue
        names = {f"#k{n}": key for n, key in enumerate(index.keys)}
        values = {f":k{n}": item[key] for n, key in enumerate(index.keys)}
        answer = client.query(
            TableName=table,
            IndexName=index.name,
            KeyConditionExpression=" AND ".join(f"#k{n} = :k{n}" for n in range(len(names))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
        for found in answer["Items"]:
            if found["task_id"] == item["task_id"]:
                held[index.name] = dict(found)
    return held


def test_a_lifecycle_writes_its_payload_to_the_table_and_little_to_the_indexes(
    client: DynamoDBClient, table: str, clock: ManualClock
) -> None:
    """Submit with a 100 KB input, RUNNING, 10 progress reports, SUCCESSFUL: the bytes each
    write sends, what each index holds after it, and the write units it costs (estimated
    from the stored items as AWS documents it, tests/contract/dynamodb_capacity.py) with
    the table's projections and with every index projecting ALL."""
    sent: list[int] = []  # the bytes of each write request

    def on_write(model: Any, params: dict[str, Any], **_: Any) -> None:
        if model.name in {"PutItem", "UpdateItem"}:
            sent.append(len(params["body"]))

    client.meta.events.register("before-call.dynamodb", on_write)
    repo = DynamoDBTaskRepository(client, table)
    indexes = indexes_of(client.describe_table(TableName=table)["Table"])

    def raw(task_id: str) -> dict[str, Any]:
        return dict(client.get_item(TableName=table, Key={"task_id": {"S": task_id}})["Item"])

    task = submit(repo, clock, input={"document": "x" * 100_000}, heartbeat_seconds=60).task
    images: list[dict[str, Any] | None] = [None, raw(task.id)]
    assert sent[0] > 100_000
    updates: list[tuple[str, dict[str, Any]]] = [("RUNNING", {"sequence": 1})]
    updates += [
        ("RUNNING", {"sequence": 2 + n, "progress": {"percent": 10 * n, "message": "working"}})
        for n in range(10)
    ]
    updates.append(("SUCCESSFUL", {"sequence": 12, "result": {"pages": 12}}))
    for status, fields in updates:
        clock.advance(1)  # each report moves the heartbeat's due time
        assert send(repo, clock, task.id, status, **fields).outcome is UpdateOutcome.APPLIED
        images.append(raw(task.id))
        # Each index holds exactly the entry its projection makes of the item: the keys, and
        # in by-owner the attributes a list's filter reads.
        stored = images[-1]
        assert stored is not None
        assert _index_entries(client, table, stored) == {
            index.name: entry(stored, index, "task_id") for index in indexes
        }
    # An update sends its change and its condition, never the input again.
    assert len(sent) == 13
    assert max(sent[1:]) < 2_000

    changes = list(itertools.pairwise(images))
    now = [write_units(old, new, indexes) for old, new in changes]
    before = [write_units(old, new, projecting_all(indexes)) for old, new in changes]
    totals = {where: sum(units[where] for units in now) for where in now[0]}
    totals_with_all = {where: sum(units[where] for units in before) for where in before[0]}
    print(
        f"lifecycle of 13 writes, 100 KB input: sent {sum(sent)} bytes; write units"
        f" {totals} (indexes {sum(totals.values()) - totals['table']}); with ALL"
        f" projections {totals_with_all} (indexes"
        f" {sum(totals_with_all.values()) - totals_with_all['table']})"
    )
    assert totals["table"] == totals_with_all["table"] >= 13 * 98
    # by-owner: written at submit and when the status changes (RUNNING, SUCCESSFUL);
    # by-deadline: written at submit, deleted when finished; by-heartbeat: written at
    # RUNNING, moved (a delete and a put) by each report, deleted when finished. One unit
    # each: no index entry holds the payload.
    assert (totals[BY_OWNER], totals[BY_DEADLINE], totals[BY_HEARTBEAT]) == (3, 2, 22)
    assert all(units[BY_HEARTBEAT] == 2 for units in now[2:12])
    # With ALL, each of those writes would have copied the whole item, about 98 units.
    assert totals_with_all[BY_HEARTBEAT] > 20 * 98


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
    assert repo.create(first.task, clock.now()) == WriteResult(applied=False, task=first.task)


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


def test_keys_a_batch_read_left_unprocessed_are_read_again(
    http_table: Any, clock: ManualClock
) -> None:
    # DynamoDB answers a BatchGetItem in part past 16 MB (100 finished tasks of 260 KB) or
    # when partitions are throttled; botocore sees a success and retries nothing.
    client, _, table = http_table
    repo = DynamoDBTaskRepository(client, table)
    tasks = [submit(repo, clock, timeout_seconds=60).task for _ in range(5)]
    partial = PartialBatchReads(client, per_answer=2)
    page = repo.list_page(ListQuery(owner="alice", limit=10), clock.now())
    assert sorted(t.id for t in page.items) == sorted(t.id for t in tasks)
    assert (partial.calls, partial.attempts) == (3, 3)
    clock.advance(61)
    assert sorted(t.id for t in repo.due(clock.now(), 10)) == sorted(t.id for t in tasks)
    assert (partial.calls, partial.attempts) == (6, 6)


def test_a_batch_read_that_reads_nothing_raises_storage_error(
    http_table: Any, clock: ManualClock
) -> None:
    client, _, table = http_table
    repo = DynamoDBTaskRepository(client, table)
    submit(repo, clock)
    PartialBatchReads(client, per_answer=0)
    with pytest.raises(StorageError) as raised:
        repo.list_page(ListQuery(owner="alice", limit=10), clock.now())
    assert raised.value.details == {"operation": "batch_get_item", "unprocessed": 1}


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
            gsi["Projection"],
        )
        for gsi in description["GlobalSecondaryIndexes"]
    }
    keys_only = {"ProjectionType": "KEYS_ONLY"}
    assert indexes == {
        BY_OWNER: (
            [("owner", "HASH"), ("created_key", "RANGE")],
            {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["expires_time", "status", "type"]},
        ),
        BY_DEADLINE: ([("open_shard", "HASH"), ("deadline_epoch", "RANGE")], keys_only),
        BY_HEARTBEAT: ([("hb_shard", "HASH"), ("heartbeat_due_epoch", "RANGE")], keys_only),
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


@pytest.mark.parametrize("shards", [0, 65])
def test_a_shard_count_out_of_bounds_is_refused(client: DynamoDBClient, shards: int) -> None:
    with pytest.raises(ValueError, match="due_shards must be 1-64"):
        DynamoDBTaskRepository(client, "tasks", due_shards=shards)
