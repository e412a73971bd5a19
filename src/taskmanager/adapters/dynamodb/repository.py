"""``DynamoDBTaskRepository``: each write one conditional request, botocore's errors
translated, lists and the sweeper's due tasks read through the indexes, signed list cursors."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar, cast

from botocore.exceptions import BotoCoreError, ClientError

from taskmanager.adapters.dynamodb.expressions import update_request
from taskmanager.adapters.dynamodb.items import (
    BY_OWNER,
    CREATE_TOKEN,
    CREATED_KEY_RE,
    DEFAULT_DUE_SHARDS,
    MAX_DUE_SHARDS,
    attr_n,
    attr_s,
    epoch,
    json_text,
    task_from_image,
    task_to_item,
)
from taskmanager.adapters.dynamodb.table import DUE_INDEXES, DueIndex
from taskmanager.domain.errors import InvalidCursorError, StorageError
from taskmanager.domain.model import Task, format_time
from taskmanager.domain.ports import Page, WriteResult

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from datetime import datetime

    from mypy_boto3_dynamodb.client import DynamoDBClient

    from taskmanager.domain.model import Change, Guard
    from taskmanager.domain.ports import ListQuery

_P = ParamSpec("_P")
_R = TypeVar("_R")


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
        token = attr_s(secrets.token_hex(16))
        try:
            self._call(
                self._client.put_item,
                TableName=self.table_name,
                Item={**task_to_item(task, self.due_shards), CREATE_TOKEN: token},
                ConditionExpression="attribute_not_exists(#id) OR #expires <= :now",
                ExpressionAttributeNames={"#id": "task_id", "#expires": "expires_time"},
                ExpressionAttributeValues={":now": attr_s(format_time(now))},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except _ConditionFailedError as refused:
            if refused.item is None:
                return WriteResult(applied=False, task=None)
            if refused.item.get(CREATE_TOKEN) == token:
                return WriteResult(applied=True, task=task)
            return WriteResult(applied=False, task=task_from_image(refused.item))
        return WriteResult(applied=True, task=task)

    def apply(self, guard: Guard, change: Change) -> WriteResult:
        request = update_request(guard, change, self.due_shards)
        try:
            response = self._call(
                self._client.update_item,
                TableName=self.table_name,
                Key={"task_id": attr_s(guard.task_id)},
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **request,
            )
        except _ConditionFailedError as refused:
            stored = None if refused.item is None else task_from_image(refused.item)
            return WriteResult(applied=False, task=stored)
        return WriteResult(applied=True, task=task_from_image(response["Attributes"]))

    # -- reads -------------------------------------------------------------------------------
    def get(self, task_id: str) -> Task | None:
        response = self._call(
            self._client.get_item,
            TableName=self.table_name,
            Key={"task_id": attr_s(task_id)},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return None if item is None else task_from_image(item)

    def list_page(self, query: ListQuery, now: datetime) -> Page:
        # by-owner holds the keys and the filtered attributes: the filter runs on the index,
        # and the page's tasks are then read from the table by key.
        names = {"#owner": "owner", "#expires": "expires_time"}
        values: dict[str, Any] = {":owner": attr_s(query.owner), ":now": attr_s(format_time(now))}
        key = "#owner = :owner"
        if query.cursor:
            values[":after"] = attr_s(self._decode_cursor(query.cursor, query.owner))
            names["#ck"] = "created_key"
            key += " AND #ck < :after"
        filters = ["(attribute_not_exists(#expires) OR #expires > :now)"]
        if query.status is not None:
            names["#status"] = "status"
            values[":status"] = attr_s(query.status.value)
            filters.append("#status = :status")
        if query.type is not None:
            names["#type"] = "type"
            values[":type"] = attr_s(query.type)
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
        for index in DUE_INDEXES:
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
        self, index: DueIndex, shard: str, now: datetime, limit: int
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
                ExpressionAttributeValues={":shard": attr_s(shard), ":now": attr_n(epoch(now))},
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
            keys = [{"task_id": attr_s(i)} for i in task_ids[first : first + _BATCH_GET_KEYS]]
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
        raw = json_text({"k": position, "c": self._cursor_digest(owner, position)}).encode()
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
        if not CREATED_KEY_RE.match(position) or digest != self._cursor_digest(owner, position):
            raise InvalidCursorError
        return position


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
