"""The item that stores a task: the layout's constants (the table in the package docstring,
:mod:`taskmanager.adapters.dynamodb`), task <-> item, and the small codecs of attribute values.

No botocore here: the stream handler decodes images with :func:`task_from_image`.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from taskmanager.domain.errors import StorageError
from taskmanager.domain.model import (
    OPEN_STATUSES,
    Progress,
    Task,
    TaskError,
    TaskStatus,
    format_time,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

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
CREATED_KEY_RE: Final = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z#[^#]{1,64}$")


def epoch(value: datetime) -> str:
    """Epoch seconds with exactly six decimals, as a DynamoDB number string."""
    us = (value - _EPOCH) // _ONE_US
    return f"{us // 1_000_000}.{us % 1_000_000:06d}"


def ttl_epoch(value: datetime) -> str:
    return str(math.ceil((value - _EPOCH) / timedelta(seconds=1)))


def shard_of(task_id: str, shards: int) -> str:
    return str(zlib.crc32(task_id.encode()) % shards)


def json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def attr_s(value: str) -> dict[str, Any]:
    return {"S": value}


def attr_n(value: int | str) -> dict[str, Any]:
    return {"N": str(value)}


def created_key(task: Task) -> str:
    """The ``by-owner`` range key: sorts by creation time, then id."""
    return f"{format_time(task.created_at)}#{task.id}"


def task_to_item(task: Task, due_shards: int = DEFAULT_DUE_SHARDS) -> dict[str, Any]:
    """The DynamoDB item (low-level attribute values) that stores ``task``, its sweeper
    index attributes spread over ``due_shards`` shards."""
    item: dict[str, Any] = {
        "task_id": attr_s(task.id),
        "owner": attr_s(task.owner),
        "created_key": attr_s(created_key(task)),
        "type": attr_s(task.type),
        "status": attr_s(task.status.value),
        "input": attr_s(json_text(task.input)),
        "version": attr_n(task.version),
        "created_at": attr_s(format_time(task.created_at)),
        "updated_at": attr_s(format_time(task.updated_at)),
        "deadline_at": attr_s(format_time(task.deadline_at)),
    }
    optional_strings = {
        "result": None if task.result is None else json_text(task.result),
        "progress": None if task.progress is None else task.progress.model_dump_json(),
        "error": None if task.error is None else task.error.model_dump_json(),
        "started_at": None if task.started_at is None else format_time(task.started_at),
        "finished_at": None if task.finished_at is None else format_time(task.finished_at),
        "expires_time": None if task.expires_at is None else format_time(task.expires_at),
        "idempotency_key": task.idempotency_key,
        "request_fingerprint": task.request_fingerprint,
    }
    item.update({k: attr_s(v) for k, v in optional_strings.items() if v is not None})
    if task.expires_at is not None:
        item[TTL_ATTRIBUTE] = attr_n(ttl_epoch(task.expires_at))
    if task.heartbeat_seconds is not None:
        item["heartbeat_seconds"] = attr_n(task.heartbeat_seconds)
    if task.start_timeout_seconds is not None:
        item["start_timeout_seconds"] = attr_n(task.start_timeout_seconds)
    if task.last_sequence is not None:
        item["last_sequence"] = attr_n(task.last_sequence)
    if task.status in OPEN_STATUSES:
        item["open_shard"] = attr_s(shard_of(task.id, due_shards))
        item["deadline_epoch"] = attr_n(epoch(task.deadline_at))
    if task.status is TaskStatus.RUNNING:
        item["hb_shard"] = attr_s(shard_of(task.id, due_shards))
        offset = task.heartbeat_seconds or NO_HEARTBEAT_SECONDS
        item["heartbeat_due_epoch"] = attr_n(epoch(task.updated_at + timedelta(seconds=offset)))
    start_due = task.start_due_at
    if start_due is not None:
        # A CREATED task's start due time shares ``by-heartbeat`` (when the task must next
        # show that someone works on it): the first change, which leaves CREATED, rewrites
        # or removes it, so no update costs a write more.
        item["hb_shard"] = attr_s(shard_of(task.id, due_shards))
        item["heartbeat_due_epoch"] = attr_n(epoch(start_due))
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
            start_timeout_seconds=_number(image, "start_timeout_seconds"),
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
        "Key": {"task_id": attr_s(task_id)},
        "ProjectionExpression": "#s",
        "ExpressionAttributeNames": {"#s": "status"},
        "ConsistentRead": True,
    }


def status_from_item(item: Mapping[str, Any] | None) -> TaskStatus | None:
    """The status in the ``Item`` a :func:`status_request` returned; None without an item
    (no such task)."""
    return TaskStatus(item["status"]["S"]) if item else None


def state_request(table_name: str, task_id: str) -> dict[str, Any]:
    """As :func:`status_request`, with the task's progress too: what a processor reads once
    before it starts, so that an attempt that takes over a RUNNING task sees how far the
    earlier one came (the read costs the same: DynamoDB charges by item size, not by the
    attributes projected). Decode the answer with :func:`state_from_item`."""
    return {
        "TableName": table_name,
        "Key": {"task_id": attr_s(task_id)},
        "ProjectionExpression": "#s, progress",
        "ExpressionAttributeNames": {"#s": "status"},
        "ConsistentRead": True,
    }


def state_from_item(item: Mapping[str, Any] | None) -> tuple[TaskStatus, Progress | None] | None:
    """The status and progress in the ``Item`` a :func:`state_request` returned; None
    without an item (no such task)."""
    if not item:
        return None
    progress = item.get("progress", {}).get("S")
    return (
        TaskStatus(item["status"]["S"]),
        None if progress is None else Progress.model_validate_json(progress),
    )
