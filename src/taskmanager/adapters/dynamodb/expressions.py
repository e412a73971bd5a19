"""The expressions of a guarded ``UpdateItem``: the domain's guard as a
``ConditionExpression``, the change as an ``UpdateExpression``, and the sweeper's sparse index
attributes kept right."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taskmanager.adapters.dynamodb.items import (
    NO_HEARTBEAT_SECONDS,
    TTL_ATTRIBUTE,
    attr_n,
    attr_s,
    epoch,
    json_text,
    shard_of,
    ttl_epoch,
)
from taskmanager.domain.model import TERMINAL_STATUSES, TaskStatus, format_time

if TYPE_CHECKING:
    from datetime import datetime

    from taskmanager.domain.model import Change, Guard


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
        options = ", ".join(x.value(f"g{n}", attr_s(s)) for n, s in enumerate(statuses))
        conditions.append(f"{x.name('status')} IN ({options})")
    else:
        conditions.append(f"attribute_not_exists({x.name('task_id')})")
    if guard.sequence is not None:
        seq = x.name("last_sequence")
        bound = x.value("gseq", attr_n(guard.sequence))
        conditions.append(f"(attribute_not_exists({seq}) OR {seq} < {bound})")
    if guard.owner is not None:
        conditions.append(f"{x.name('owner')} = {x.value('gowner', attr_s(guard.owner))}")
    if guard.version is not None:
        conditions.append(f"{x.name('version')} = {x.value('gversion', attr_n(guard.version))}")
    if guard.types is not None:
        # DynamoDB's IN takes at most 100 values: a sender is allowed far fewer types than that
        # (docs/deploy.md, "Who may report on a task"); an empty set holds of no task.
        types = sorted(guard.types)
        if types:
            options = ", ".join(x.value(f"t{n}", attr_s(t)) for n, t in enumerate(types))
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
            f"{x.value('updated_epoch', attr_n(epoch(updated)))} + "
            f"if_not_exists({x.name('heartbeat_seconds')}, "
            f"{x.value('no_heartbeat', attr_n(NO_HEARTBEAT_SECONDS))})"
        )
        sets = [
            f"{x.name('hb_shard')} = {x.value('hb_shard', attr_s(shard_of(task_id, due_shards)))}",
            f"{x.name('heartbeat_due_epoch')} = {due}",
        ]
        return sets, []
    removes = [x.name("hb_shard"), x.name("heartbeat_due_epoch")]
    if status in TERMINAL_STATUSES:
        removes += [x.name("open_shard"), x.name("deadline_epoch")]
    return [], removes


def update_request(guard: Guard, change: Change, due_shards: int) -> dict[str, Any]:
    """The ``UpdateItem`` arguments that apply ``change`` iff ``guard`` holds: the same
    result as :func:`~taskmanager.domain.model.apply_change`, computed by DynamoDB."""
    x = _Expression()
    condition = _guard_condition(guard, x)
    status = change.status
    version = x.name("version")
    sets = [
        f"{x.name('status')} = {x.value('status', attr_s(status.value))}",
        f"{version} = {version} + {x.value('one', attr_n(1))}",
        f"{x.name('updated_at')} = {x.value('updated', attr_s(format_time(change.updated_at)))}",
    ]
    removes: list[str] = []
    texts: dict[str, str | None] = {
        "result": None if change.result is None else json_text(change.result),
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
            sets.append(f"{x.name(attr)} = {x.value(attr, attr_s(text))}")
    ttl = x.name(TTL_ATTRIBUTE)
    if change.expires_at is None:
        removes.append(ttl)
    else:
        sets.append(f"{ttl} = {x.value('ttl', attr_n(ttl_epoch(change.expires_at)))}")
    if change.started_at is not None:
        started = x.name("started_at")
        at = x.value("started", attr_s(format_time(change.started_at)))
        sets.append(f"{started} = if_not_exists({started}, {at})")
    if change.sequence is not None:
        sets.append(f"{x.name('last_sequence')} = {x.value('seq', attr_n(change.sequence))}")
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
