"""DynamoDB: the task store of the AWS deployment.

Every write is one conditional request, never a read followed by a write:

- submit is one ``PutItem`` with ``attribute_not_exists(task_id) OR expires_time <= now``
  (a live task with that id is kept; an expired one that DynamoDB has not deleted yet is
  replaced) and ``ReturnValuesOnConditionCheckFailure=ALL_OLD``: a refused submit carries
  the stored task, from which the use case tells an idempotent replay from a reused key. The
  item carries the request's random ``create_token``, so a retry of that same request that
  finds the item it wrote itself (the answer to the write was lost) reports it created;
- every guarded change is one ``UpdateItem`` whose ``ConditionExpression`` is the domain's
  :class:`~taskmanager.domain.model.Guard` (prior status in the allowed set, sequence bound,
  owner, version, task type), with ``ReturnValues=ALL_NEW`` and
  ``ReturnValuesOnConditionCheckFailure=ALL_OLD``: a refusal returns the stored task, which
  classifies it (duplicate, stale, rejected) without another call.

The outbox of this store is the table's stream (``NEW_AND_OLD_IMAGES``): the stream handler
turns each record into ``events_for_change(task_from_image(old), task_from_image(new))``.

Item layout (one item per task; Terraform creates the same table)
------------------------------------------------------------------

=======================  ====  ====================================================
attribute                type  meaning
=======================  ====  ====================================================
``task_id``              S     table hash key (no range key)
``owner``                S     hash key of GSI ``by-owner``
``created_key``          S     range key of ``by-owner``: ``created_at + "#" + id``
``type``, ``status``     S     the task's type and status
``input``                S     JSON text (``null`` when no input)
``result``               S     JSON text; absent when null
``progress``, ``error``  S     JSON objects as text; absent when null
``version``              N     +1 per applied change
``created_at``,          S     RFC 3339 UTC with microseconds, fixed width
``updated_at``,
``deadline_at``,
``started_at``,
``finished_at``
``expires_time``         S     exact ``expires_at`` (RFC 3339); set when terminal
``expires_at``           N     TTL attribute: ``expires_time`` in epoch seconds, rounded up
``heartbeat_seconds``    N     absent when the task has no heartbeat
``last_sequence``        N     the highest processor sequence applied
``idempotency_key``,     S     present when submitted with an Idempotency-Key
``request_fingerprint``
``open_shard``           S     hash key of sparse GSI ``by-deadline``; only while open
``deadline_epoch``       N     its range key: ``deadline_at`` in epoch seconds (6 decimals)
``hb_shard``             S     hash key of sparse GSI ``by-heartbeat``; only while RUNNING
``heartbeat_due_epoch``  N     its range key: ``updated_at + heartbeat_seconds``
``create_token``         S     random token of the ``PutItem`` that wrote the item
=======================  ====  ====================================================

Indexes, each projecting only what its query reads (an index holds a copy of every projected
attribute, and DynamoDB rewrites that copy whenever one of them changes: with ALL, every
progress report would rewrite the whole item, up to 400 KB, into each index):

- ``by-owner`` (``owner``, ``created_key``), INCLUDE ``status``, ``type``, ``expires_time``:
  what a list's filter reads. :meth:`~DynamoDBTaskRepository.list_page` then reads the
  page's tasks from the table with one ``BatchGetItem``;
- ``by-deadline`` (``open_shard``, ``deadline_epoch``) and ``by-heartbeat`` (``hb_shard``,
  ``heartbeat_due_epoch``), KEYS_ONLY: the key attributes say which tasks are due and when;
  :meth:`~DynamoDBTaskRepository.due` reads the earliest of them from the table with
  ``BatchGetItem``.

The shard attributes spread the sweeper's indexes over ``due_shards`` partitions
(``crc32(id) % due_shards``, default :data:`DEFAULT_DUE_SHARDS`); :meth:`due` queries each.
A task keeps the shard it was written with, so the count may be raised on a live table but
never lowered: :meth:`due` queries shards ``0 .. due_shards - 1`` only.
TTL on ``expires_at``; stream ``NEW_AND_OLD_IMAGES``; billing ``PAY_PER_REQUEST``.

A RUNNING change cannot tell in one ``UpdateItem`` whether the stored task has a heartbeat
(DynamoDB has no conditional ``SET``), so every RUNNING task carries ``hb_shard``;
``heartbeat_due_epoch = updated + if_not_exists(heartbeat_seconds, 10**10)``, which puts a
task without a heartbeat centuries in the future, where the due query never reaches it.

Payloads are stored as JSON text, not DynamoDB maps: JSON numbers (floats, big integers)
round-trip exactly and the 400 KB item limit holds (input and result are 128 KiB each).

The adapter sends each request once: throttling, server faults and connection errors are
retried by the client, in botocore (``Config(retries=...)``; the deployment's is
:func:`taskmanager.entrypoints.bootstrap.client_config`), the one retry layer. A request that
still fails raises ``StorageError`` (``raise ... from`` the botocore error). No botocore
``ClientError`` leaves this module.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import secrets
import zlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, NamedTuple, ParamSpec, TypeVar, cast

from botocore.exceptions import BotoCoreError, ClientError

from taskmanager.domain.errors import InvalidCursorError, StorageError
from taskmanager.domain.model import (
    OPEN_STATUSES,
    TERMINAL_STATUSES,
    Progress,
    Task,
    TaskError,
    TaskStatus,
    format_time,
)
from taskmanager.domain.ports import Page, WriteResult

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TableDescriptionTypeDef

    from taskmanager.domain.model import Change, Guard
    from taskmanager.domain.ports import ListQuery

_P = ParamSpec("_P")
_R = TypeVar("_R")

BY_OWNER: Final = "by-owner"
BY_DEADLINE: Final = "by-deadline"
BY_HEARTBEAT: Final = "by-heartbeat"
TTL_ATTRIBUTE: Final = "expires_at"
#: Partitions of the sweeper's sparse indexes unless a repository is given another count
#: (``TASKMANAGER_DUE_SHARDS``); ``due`` makes two queries per shard.
DEFAULT_DUE_SHARDS: Final = 4
#: The most shards a repository takes: each costs every sweep two more queries.
MAX_DUE_SHARDS: Final = 64
#: The non-key attributes ``by-owner`` projects: those a list's filter reads (sorted, as
#: DescribeTable and Terraform list them).
OWNER_INDEX_ATTRIBUTES: Final = ("expires_time", "status", "type")
#: ``heartbeat_due_epoch`` offset for a RUNNING task without a heartbeat (about 317 years).
NO_HEARTBEAT_SECONDS: Final = 10**10

#: The attribute holding the random token of the ``PutItem`` that created the item.
CREATE_TOKEN: Final = "create_token"

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US: Final = timedelta(microseconds=1)
_CREATED_KEY_RE: Final = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z#[^#]{1,64}$")


def _epoch(value: datetime) -> str:
    """Epoch seconds with exactly six decimals, as a DynamoDB number string."""
    us = (value - _EPOCH) // _ONE_US
    return f"{us // 1_000_000}.{us % 1_000_000:06d}"


def _ttl_epoch(value: datetime) -> str:
    return str(math.ceil((value - _EPOCH) / timedelta(seconds=1)))


def _shard(task_id: str, shards: int) -> str:
    return str(zlib.crc32(task_id.encode()) % shards)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _s(value: str) -> dict[str, Any]:
    return {"S": value}


def _n(value: int | str) -> dict[str, Any]:
    return {"N": str(value)}


def created_key(task: Task) -> str:
    """The ``by-owner`` range key: sorts by creation time, then id."""
    return f"{format_time(task.created_at)}#{task.id}"


def task_to_item(task: Task, due_shards: int = DEFAULT_DUE_SHARDS) -> dict[str, Any]:
    """The DynamoDB item (low-level attribute values) that stores ``task``, its sweeper
    index attributes spread over ``due_shards`` shards."""
    item: dict[str, Any] = {
        "task_id": _s(task.id),
        "owner": _s(task.owner),
        "created_key": _s(created_key(task)),
        "type": _s(task.type),
        "status": _s(task.status.value),
        "input": _s(_json(task.input)),
        "version": _n(task.version),
        "created_at": _s(format_time(task.created_at)),
        "updated_at": _s(format_time(task.updated_at)),
        "deadline_at": _s(format_time(task.deadline_at)),
    }
    optional_strings = {
        "result": None if task.result is None else _json(task.result),
        "progress": None if task.progress is None else task.progress.model_dump_json(),
        "error": None if task.error is None else task.error.model_dump_json(),
        "started_at": None if task.started_at is None else format_time(task.started_at),
        "finished_at": None if task.finished_at is None else format_time(task.finished_at),
        "expires_time": None if task.expires_at is None else format_time(task.expires_at),
        "idempotency_key": task.idempotency_key,
        "request_fingerprint": task.request_fingerprint,
    }
    item.update({k: _s(v) for k, v in optional_strings.items() if v is not None})
    if task.expires_at is not None:
        item[TTL_ATTRIBUTE] = _n(_ttl_epoch(task.expires_at))
    if task.heartbeat_seconds is not None:
        item["heartbeat_seconds"] = _n(task.heartbeat_seconds)
    if task.last_sequence is not None:
        item["last_sequence"] = _n(task.last_sequence)
    if task.status in OPEN_STATUSES:
        item["open_shard"] = _s(_shard(task.id, due_shards))
        item["deadline_epoch"] = _n(_epoch(task.deadline_at))
    if task.status is TaskStatus.RUNNING:
        item["hb_shard"] = _s(_shard(task.id, due_shards))
        offset = task.heartbeat_seconds or NO_HEARTBEAT_SECONDS
        item["heartbeat_due_epoch"] = _n(_epoch(task.updated_at + timedelta(seconds=offset)))
    return item


def _optional_string(image: Mapping[str, Any], name: str) -> str | None:
    """The value of the string (``S``) attribute ``name``, or ``None`` where the item has
    none: plain text (an idempotency key) or JSON text the caller decodes (progress)."""
    value = image.get(name)
    return None if value is None else str(value["S"])


def _number(image: Mapping[str, Any], name: str) -> int | None:
    value = image.get(name)
    return None if value is None else int(value["N"])


def _time(image: Mapping[str, Any], name: str) -> datetime | None:
    value = image.get(name)
    return None if value is None else datetime.fromisoformat(value["S"])


def task_from_image(image: Mapping[str, Any]) -> Task:
    """Decode a DynamoDB-JSON item (``GetItem``, a query, a stream ``NewImage``/``OldImage``)
    into a :class:`Task`. Index and TTL attributes are ignored."""
    try:
        progress = _optional_string(image, "progress")
        error = _optional_string(image, "error")
        result = _optional_string(image, "result")
        return Task(
            id=image["task_id"]["S"],
            owner=image["owner"]["S"],
            type=image["type"]["S"],
            status=TaskStatus(image["status"]["S"]),
            input=json.loads(image["input"]["S"]),
            version=int(image["version"]["N"]),
            created_at=datetime.fromisoformat(image["created_at"]["S"]),
            updated_at=datetime.fromisoformat(image["updated_at"]["S"]),
            deadline_at=datetime.fromisoformat(image["deadline_at"]["S"]),
            heartbeat_seconds=_number(image, "heartbeat_seconds"),
            progress=None if progress is None else Progress.model_validate_json(progress),
            result=None if result is None else json.loads(result),
            error=None if error is None else TaskError.model_validate_json(error),
            started_at=_time(image, "started_at"),
            finished_at=_time(image, "finished_at"),
            expires_at=_time(image, "expires_time"),
            last_sequence=_number(image, "last_sequence"),
            idempotency_key=_optional_string(image, "idempotency_key"),
            request_fingerprint=_optional_string(image, "request_fingerprint"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise StorageError(f"stored item is not a task: {exc!r}") from exc


def status_request(table_name: str, task_id: str) -> dict[str, Any]:
    """The arguments of a consistent ``GetItem`` that reads a task's status and nothing else:
    what a processor asks before and while it works (the table's layout stays here; the
    caller sends it with its own client). Decode the answer with :func:`status_from_item`."""
    return {
        "TableName": table_name,
        "Key": {"task_id": _s(task_id)},
        "ProjectionExpression": "#s",
        "ExpressionAttributeNames": {"#s": "status"},
        "ConsistentRead": True,
    }


def status_from_item(item: Mapping[str, Any] | None) -> TaskStatus | None:
    """The status in the ``Item`` a :func:`status_request` returned; None without an item
    (no such task)."""
    return TaskStatus(item["status"]["S"]) if item else None


class _ConditionFailedError(Exception):
    """A conditional write was refused; ``item`` is the stored item (ALL_OLD) or None."""

    def __init__(self, item: Mapping[str, Any] | None) -> None:
        super().__init__("conditional check failed")
        self.item = item


class DynamoDBTaskRepository:
    """The :class:`~taskmanager.domain.ports.TaskRepository` on one DynamoDB table.

    ``client`` is a boto3 (or botocore) DynamoDB client, built lazily and cached by the
    caller. Its retry configuration is the only retry of a request: this adapter sends each
    request once (the deployment's: :func:`taskmanager.entrypoints.bootstrap.client_config`).
    ``due_shards`` (1 to :data:`MAX_DUE_SHARDS`) spreads the sweeper's indexes; every
    repository on one table must use the same count, and it may be raised, never lowered.
    """

    def __init__(
        self, client: DynamoDBClient, table_name: str, *, due_shards: int = DEFAULT_DUE_SHARDS
    ) -> None:
        if not 1 <= due_shards <= MAX_DUE_SHARDS:
            raise ValueError(f"due_shards must be 1-{MAX_DUE_SHARDS}, not {due_shards}")
        self._client = client
        self.table_name = table_name
        self.due_shards = due_shards

    # -- sending -----------------------------------------------------------------------------
    def _call(self, operation: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
        """One request, retried by botocore as the client is configured; its refusal or
        failure translated."""
        name = getattr(operation, "__name__", "request")
        try:
            return operation(*args, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                item = cast("Mapping[str, Any] | None", exc.response.get("Item"))
                raise _ConditionFailedError(item) from exc
            attempts = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
            raise StorageError(
                f"DynamoDB {name} on {self.table_name} failed after {attempts} "
                f"attempt(s): {code or exc}",
                details={"operation": name, "code": code, "attempts": attempts},
            ) from exc
        except BotoCoreError as exc:
            # A connection fault that outlasted the client's retries (their count is not
            # on the exception).
            raise StorageError(
                f"DynamoDB {name} on {self.table_name} failed: {exc}",
                details={"operation": name},
            ) from exc

    # -- writes ------------------------------------------------------------------------------
    def create(self, task: Task, now: datetime) -> WriteResult:
        # This create's own mark on the item. When an attempt of this PutItem writes the
        # item but its answer is lost, the retry (botocore resends the same request, token
        # and all) meets the condition; the stored item then carries this token: it is our
        # own write, the task is created, even if its processor changed it since. Any other
        # request, an idempotent replay of the same submit included, has another token.
        # Comparing the stored task with ours could not tell: two submits of one request at
        # the same clock reading make equal tasks, and a task changed before the retry
        # arrived no longer equals the one we sent.
        token = _s(secrets.token_hex(16))
        try:
            self._call(
                self._client.put_item,
                TableName=self.table_name,
                Item={**task_to_item(task, self.due_shards), CREATE_TOKEN: token},
                ConditionExpression="attribute_not_exists(#id) OR #expires <= :now",
                ExpressionAttributeNames={"#id": "task_id", "#expires": "expires_time"},
                ExpressionAttributeValues={":now": _s(format_time(now))},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except _ConditionFailedError as refused:
            if refused.item is None:
                return WriteResult(False, None)
            if refused.item.get(CREATE_TOKEN) == token:
                return WriteResult(True, task)
            return WriteResult(False, task_from_image(refused.item))
        return WriteResult(True, task)

    def apply(self, guard: Guard, change: Change) -> WriteResult:
        request = _update_request(guard, change, self.due_shards)
        try:
            response = self._call(
                self._client.update_item,
                TableName=self.table_name,
                Key={"task_id": _s(guard.task_id)},
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **request,
            )
        except _ConditionFailedError as refused:
            return WriteResult(
                False, None if refused.item is None else task_from_image(refused.item)
            )
        return WriteResult(True, task_from_image(response["Attributes"]))

    # -- reads -------------------------------------------------------------------------------
    def get(self, task_id: str) -> Task | None:
        response = self._call(
            self._client.get_item,
            TableName=self.table_name,
            Key={"task_id": _s(task_id)},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return None if item is None else task_from_image(item)

    def list_page(self, query: ListQuery, now: datetime) -> Page:
        # by-owner holds the keys and the filtered attributes: the filter runs on the index,
        # and the page's tasks are then read from the table by key.
        names = {"#owner": "owner", "#expires": "expires_time"}
        values: dict[str, Any] = {":owner": _s(query.owner), ":now": _s(format_time(now))}
        key = "#owner = :owner"
        if query.cursor:
            values[":after"] = _s(self._decode_cursor(query.cursor, query.owner))
            names["#ck"] = "created_key"
            key += " AND #ck < :after"
        filters = ["(attribute_not_exists(#expires) OR #expires > :now)"]
        if query.status is not None:
            names["#status"] = "status"
            values[":status"] = _s(query.status.value)
            filters.append("#status = :status")
        if query.type is not None:
            names["#type"] = "type"
            values[":type"] = _s(query.type)
            filters.append("#type = :type")
        wanted = query.limit + 1  # one more than a page tells whether another page exists
        found: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        for _ in range(_MAX_LIST_REQUESTS):
            extra: dict[str, Any] = {} if start is None else {"ExclusiveStartKey": start}
            response = self._call(
                self._client.query,
                TableName=self.table_name,
                IndexName=BY_OWNER,
                KeyConditionExpression=key,
                FilterExpression=" AND ".join(filters),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ScanIndexForward=False,
                Limit=max(wanted - len(found), _MIN_LIST_READ),
                **extra,
            )
            found += response.get("Items", [])
            start = response.get("LastEvaluatedKey")
            if len(found) >= wanted or start is None:
                break
        entries = found[: query.limit]
        ids = [entry["task_id"]["S"] for entry in entries]
        # Lists read as eventually consistent as the index they come from, at half the cost
        # of a consistent read.
        stored = self._read_tasks(ids, consistent=False)
        items = [
            task
            for task in (stored.get(task_id) for task_id in ids)
            if task is not None and _on_page(task, query, now)
        ]
        if len(found) > query.limit:
            position: str | None = entries[-1]["created_key"]["S"]
        elif start is not None:
            # The read budget ran out before a full page: continue from where it stopped.
            position = start["created_key"]["S"]
        else:
            position = None
        cursor = None if position is None else self._encode_cursor(position, query.owner)
        return Page(items=items, next_cursor=cursor)

    def due(self, now: datetime, limit: int) -> list[Task]:
        # The due indexes hold keys only: their range keys say when each task is due, so the
        # earliest ``limit`` are chosen from them and only those are read from the table.
        earliest: dict[str, Decimal] = {}
        for index in _DUE_INDEXES:
            for shard in range(self.due_shards):
                for entry in self._query_due(index, str(shard), now, limit):
                    task_id, at = entry["task_id"]["S"], Decimal(entry[index.at]["N"])
                    earliest[task_id] = min(at, earliest.get(task_id, at))
        chosen = sorted(earliest, key=lambda task_id: (earliest[task_id], task_id))[:limit]
        # Consistent: the sweeper plans its write on what it reads, and a task that reported
        # since the index was written is no longer due.
        stored = self._read_tasks(chosen, consistent=True).values()
        due = [task for task in stored if task.due_at is not None and task.due_at <= now]
        return sorted(due, key=lambda t: (t.due_at or now, t.id))

    def _query_due(
        self, index: _DueIndex, shard: str, now: datetime, limit: int
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        while len(items) < limit:
            extra: dict[str, Any] = {} if start is None else {"ExclusiveStartKey": start}
            response = self._call(
                self._client.query,
                TableName=self.table_name,
                IndexName=index.name,
                KeyConditionExpression="#shard = :shard AND #at <= :now",
                ExpressionAttributeNames={"#shard": index.shard, "#at": index.at},
                ExpressionAttributeValues={":shard": _s(shard), ":now": _n(_epoch(now))},
                Limit=limit - len(items),
                **extra,
            )
            items += response.get("Items", [])
            start = response.get("LastEvaluatedKey")
            if start is None:
                break
        return items

    def _read_tasks(self, task_ids: Sequence[str], *, consistent: bool) -> dict[str, Task]:
        """The stored tasks of ``task_ids`` (distinct) by id, those no longer stored left
        out: one ``BatchGetItem`` per 100 ids, and one more for the keys each answer left
        unprocessed (a 16 MB answer limit, or throttled partitions). botocore retries a
        request refused whole; an answer that read nothing of what it was asked is a
        failure."""
        tasks: dict[str, Task] = {}
        for first in range(0, len(task_ids), _BATCH_GET_KEYS):
            keys = [{"task_id": _s(i)} for i in task_ids[first : first + _BATCH_GET_KEYS]]
            while keys:
                response = self._call(
                    self._client.batch_get_item,
                    RequestItems={self.table_name: {"Keys": keys, "ConsistentRead": consistent}},
                )
                for item in response.get("Responses", {}).get(self.table_name, []):
                    task = task_from_image(item)
                    tasks[task.id] = task
                left = response.get("UnprocessedKeys", {}).get(self.table_name)
                unprocessed: list[Any] = [] if left is None else list(left["Keys"])
                if len(unprocessed) >= len(keys):
                    raise StorageError(
                        f"DynamoDB BatchGetItem on {self.table_name} read none of "
                        f"{len(keys)} key(s)",
                        details={"operation": "batch_get_item", "unprocessed": len(keys)},
                    )
                keys = unprocessed
        return tasks

    # -- cursors -----------------------------------------------------------------------------
    def _cursor_digest(self, owner: str, position: str) -> str:
        """The integrity check a cursor carries: a digest of the table, the owner and the
        position, so that a cursor altered or presented by another owner is refused. Not a
        secret: the key condition always names the caller, so a forged one reads nothing
        of anyone else's (docs/storage.md)."""
        digest = hashlib.sha256(f"{self.table_name}\x00{owner}\x00{position}".encode())
        return base64.urlsafe_b64encode(digest.digest()[:9]).decode()

    def _encode_cursor(self, position: str, owner: str) -> str:
        raw = _json({"k": position, "c": self._cursor_digest(owner, position)}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _decode_cursor(self, cursor: str, owner: str) -> str:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            data = json.loads(raw)
            position, digest = data["k"], data["c"]
        except (binascii.Error, ValueError, TypeError, KeyError) as exc:
            raise InvalidCursorError from exc
        if not isinstance(position, str) or not isinstance(digest, str):
            raise InvalidCursorError
        if not _CREATED_KEY_RE.match(position) or digest != self._cursor_digest(owner, position):
            raise InvalidCursorError
        return position


class _DueIndex(NamedTuple):
    name: str
    shard: str
    at: str


_DUE_INDEXES: Final = (
    _DueIndex(BY_DEADLINE, "open_shard", "deadline_epoch"),
    _DueIndex(BY_HEARTBEAT, "hb_shard", "heartbeat_due_epoch"),
)
_MAX_LIST_REQUESTS: Final = 10
_MIN_LIST_READ: Final = 25
#: The most keys one ``BatchGetItem`` takes.
_BATCH_GET_KEYS: Final = 100


def _on_page(task: Task, query: ListQuery, now: datetime) -> bool:
    """Whether the stored task still answers the list query that found it in ``by-owner``:
    the index is eventually consistent, so the task read from the table may be newer, and a
    page never shows what its query excludes (another owner's task above all)."""
    return (
        task.owner == query.owner
        and not task.is_expired(now)
        and (query.status is None or task.status is query.status)
        and (query.type is None or task.type == query.type)
    )


class _Expression:
    """Names and values of one request's expressions, with placeholders made on demand."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name(self, attr: str) -> str:
        self.names[f"#{attr}"] = attr
        return f"#{attr}"

    def value(self, key: str, value: dict[str, Any]) -> str:
        self.values[f":{key}"] = value
        return f":{key}"


def _guard_condition(guard: Guard, x: _Expression) -> str:
    """The ``ConditionExpression`` that holds iff ``guard`` holds of the stored item."""
    conditions = [f"attribute_exists({x.name('task_id')})"]
    statuses = sorted(s.value for s in guard.statuses)
    if statuses:
        options = ", ".join(x.value(f"g{n}", _s(s)) for n, s in enumerate(statuses))
        conditions.append(f"{x.name('status')} IN ({options})")
    else:
        conditions.append(f"attribute_not_exists({x.name('task_id')})")
    if guard.sequence is not None:
        seq = x.name("last_sequence")
        bound = x.value("gseq", _n(guard.sequence))
        conditions.append(f"(attribute_not_exists({seq}) OR {seq} < {bound})")
    if guard.owner is not None:
        conditions.append(f"{x.name('owner')} = {x.value('gowner', _s(guard.owner))}")
    if guard.version is not None:
        conditions.append(f"{x.name('version')} = {x.value('gversion', _n(guard.version))}")
    if guard.types is not None:
        # DynamoDB's IN takes at most 100 values: a sender is allowed far fewer types than that
        # (docs/deploy.md, "Who may report on a task"); an empty set holds of no task.
        types = sorted(guard.types)
        if types:
            options = ", ".join(x.value(f"t{n}", _s(t)) for n, t in enumerate(types))
            conditions.append(f"{x.name('type')} IN ({options})")
        else:
            conditions.append(f"attribute_not_exists({x.name('task_id')})")
    return " AND ".join(conditions)


def _index_updates(
    task_id: str, status: TaskStatus, updated: datetime, x: _Expression, due_shards: int
) -> tuple[list[str], list[str]]:
    """SET and REMOVE clauses that keep the sweeper's sparse index attributes right."""
    if status is TaskStatus.RUNNING:
        due = (
            f"{x.value('updated_epoch', _n(_epoch(updated)))} + "
            f"if_not_exists({x.name('heartbeat_seconds')}, "
            f"{x.value('no_heartbeat', _n(NO_HEARTBEAT_SECONDS))})"
        )
        sets = [
            f"{x.name('hb_shard')} = {x.value('hb_shard', _s(_shard(task_id, due_shards)))}",
            f"{x.name('heartbeat_due_epoch')} = {due}",
        ]
        return sets, []
    removes = [x.name("hb_shard"), x.name("heartbeat_due_epoch")]
    if status in TERMINAL_STATUSES:
        removes += [x.name("open_shard"), x.name("deadline_epoch")]
    return [], removes


def _update_request(guard: Guard, change: Change, due_shards: int) -> dict[str, Any]:
    """The ``UpdateItem`` arguments that apply ``change`` iff ``guard`` holds: the same
    result as :func:`~taskmanager.domain.model.apply_change`, computed by DynamoDB."""
    x = _Expression()
    condition = _guard_condition(guard, x)
    status = change.status
    version = x.name("version")
    sets = [
        f"{x.name('status')} = {x.value('status', _s(status.value))}",
        f"{version} = {version} + {x.value('one', _n(1))}",
        f"{x.name('updated_at')} = {x.value('updated', _s(format_time(change.updated_at)))}",
    ]
    removes: list[str] = []
    texts: dict[str, str | None] = {
        "result": None if change.result is None else _json(change.result),
        "error": None if change.error is None else change.error.model_dump_json(),
        "finished_at": None if change.finished_at is None else format_time(change.finished_at),
        "expires_time": None if change.expires_at is None else format_time(change.expires_at),
    }
    if status is TaskStatus.RUNNING:
        # A RUNNING change without progress keeps the stored progress (a bare heartbeat).
        if change.progress is not None:
            texts["progress"] = change.progress.model_dump_json()
    else:
        texts["progress"] = None
    for attr, text in texts.items():
        if text is None:
            removes.append(x.name(attr))
        else:
            sets.append(f"{x.name(attr)} = {x.value(attr, _s(text))}")
    ttl = x.name(TTL_ATTRIBUTE)
    if change.expires_at is None:
        removes.append(ttl)
    else:
        sets.append(f"{ttl} = {x.value('ttl', _n(_ttl_epoch(change.expires_at)))}")
    if change.started_at is not None:
        started = x.name("started_at")
        at = x.value("started", _s(format_time(change.started_at)))
        sets.append(f"{started} = if_not_exists({started}, {at})")
    if change.sequence is not None:
        sets.append(f"{x.name('last_sequence')} = {x.value('seq', _n(change.sequence))}")
    index_sets, index_removes = _index_updates(
        guard.task_id, status, change.updated_at, x, due_shards
    )
    expression = "SET " + ", ".join(sets + index_sets)
    if removes or index_removes:
        expression += " REMOVE " + ", ".join(removes + index_removes)
    return {
        "UpdateExpression": expression,
        "ConditionExpression": condition,
        "ExpressionAttributeNames": x.names,
        "ExpressionAttributeValues": x.values,
    }


def create_table(client: DynamoDBClient, table_name: str) -> TableDescriptionTypeDef:
    """Create the task table with exactly the layout in this module's docstring (indexes,
    stream, TTL, on-demand billing), wait until it is active, and return its description."""

    def gsi(name: str, hash_key: str, range_key: str, *attributes: str) -> Any:
        projection = (
            {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(attributes)}
            if attributes
            else {"ProjectionType": "KEYS_ONLY"}
        )
        return {
            "IndexName": name,
            "KeySchema": [
                {"AttributeName": hash_key, "KeyType": "HASH"},
                {"AttributeName": range_key, "KeyType": "RANGE"},
            ],
            "Projection": projection,
        }

    client.create_table(
        TableName=table_name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "task_id", "AttributeType": "S"},
            {"AttributeName": "owner", "AttributeType": "S"},
            {"AttributeName": "created_key", "AttributeType": "S"},
            {"AttributeName": "open_shard", "AttributeType": "S"},
            {"AttributeName": "deadline_epoch", "AttributeType": "N"},
            {"AttributeName": "hb_shard", "AttributeType": "S"},
            {"AttributeName": "heartbeat_due_epoch", "AttributeType": "N"},
        ],
        KeySchema=[{"AttributeName": "task_id", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            gsi(BY_OWNER, "owner", "created_key", *OWNER_INDEX_ATTRIBUTES),
            gsi(BY_DEADLINE, "open_shard", "deadline_epoch"),
            gsi(BY_HEARTBEAT, "hb_shard", "heartbeat_due_epoch"),
        ],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    client.get_waiter("table_exists").wait(
        TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    client.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )
    return client.describe_table(TableName=table_name)["Table"]
