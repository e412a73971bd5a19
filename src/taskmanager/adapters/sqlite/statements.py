"""The SQL statements on the ``tasks`` table, each with its parameters.

Every write is one statement. Submit is an ``INSERT`` whose upsert branch replaces only an
expired task. Every other change is one ``UPDATE ... WHERE <guard> RETURNING <task>``: the
domain's guard (prior statuses, sequence bound, owner, version, type) is the ``WHERE``
clause, so of two racing writers exactly one gets a row back. Values are always bound as parameters,
never written into the statement text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from taskmanager.adapters.sqlite.rows import (
    COLUMNS,
    CREATED_AT_PARAM,
    TASK_ROW,
    epoch_us,
    is_new,
    model_json,
    new_task_params,
    task_params,
    time_text,
    time_text_or_none,
    value_json,
)
from taskmanager.domain.model import TERMINAL_STATUSES, TaskStatus

if TYPE_CHECKING:
    from datetime import datetime

    from taskmanager.domain.model import Change, Guard, Task
    from taskmanager.domain.ports import ListQuery


def _upsert(columns: str) -> str:
    """Insert a task with ``columns`` (any other column is NULL). The upsert replaces only
    an expired row (expires_at <= now, the last parameter); otherwise nothing changes, and
    whether a row went in is the statement's change count (no RETURNING row to step to)."""
    every = (*COLUMNS.split(", ")[1:], "deadline_us", "due_us", "heartbeat_due_us")
    return (
        f"INSERT INTO tasks ({columns}) VALUES ({', '.join('?' * len(columns.split(', ')))}) "
        "ON CONFLICT (id) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in every)
        + " WHERE tasks.expires_at IS NOT NULL AND tasks.expires_at <= ?"
    )


INSERT: Final = _upsert(f"{COLUMNS}, deadline_us, due_us, heartbeat_due_us")
#: A task as submitted: the columns it can have before it runs. The others stay NULL, left
#: out rather than bound, since every bound parameter costs Python's sqlite3 a call.
INSERT_NEW: Final = _upsert(
    "id, owner, type, status, input, version, created_at, updated_at, deadline_at, "
    "heartbeat_seconds, idempotency_key, request_fingerprint, deadline_us, due_us"
)
SELECT_ONE: Final = f"SELECT {TASK_ROW} FROM tasks WHERE id = ?"
DUE_BY_DEADLINE: Final = (
    f"SELECT {TASK_ROW} FROM tasks WHERE due_us IS NOT NULL AND due_us <= ? ORDER BY due_us LIMIT ?"
)
DUE_BY_HEARTBEAT: Final = (
    f"SELECT {TASK_ROW} FROM tasks WHERE heartbeat_due_us IS NOT NULL AND heartbeat_due_us <= ? "
    "ORDER BY heartbeat_due_us LIMIT ?"
)

#: Up to ``limit`` tasks expired at ``now`` (RFC 3339 text, which sorts as time), deleted by
#: the local sweeper as DynamoDB's TTL deletes them on AWS. No index: the sweeper runs it
#: seldom (``RuntimeConfig.purge_interval``), and an index on ``expires_at`` would cost every
#: task that finishes one more page to write.
PURGE_EXPIRED: Final = (
    "DELETE FROM tasks WHERE rowid IN (SELECT rowid FROM tasks "
    "WHERE expires_at IS NOT NULL AND expires_at <= ? LIMIT ?)"
)


def insert_statement(task: Task, now: datetime) -> tuple[str, tuple[Any, ...]]:
    """The insert of ``task`` at ``now`` (which an expired task of the same id must have
    reached), with its parameters: ``INSERT_NEW`` for a task as submitted, else ``INSERT``."""
    if is_new(task):
        sql, params = INSERT_NEW, new_task_params(task)
    else:
        sql, params = INSERT, task_params(task)
    # A new task is made at ``now``: its created_at, already formatted in ``params``.
    now_text = params[CREATED_AT_PARAM] if now is task.created_at else time_text(now)
    return sql, (*params, now_text)


def list_statement(
    query: ListQuery, now: datetime, after: tuple[str, str] | None
) -> tuple[str, list[Any]]:
    """One page of ``query``, newest first, and one task more (which tells whether another
    page follows). ``after`` is the ``(created_at, id)`` of the previous page's last task."""
    where = ["owner = ?", "(expires_at IS NULL OR expires_at > ?)"]
    params: list[Any] = [query.owner, time_text(now)]
    if query.status is not None:
        where.append("status = ?")
        params.append(query.status.value)
    if query.type is not None:
        where.append("type = ?")
        params.append(query.type)
    if after is not None:
        where.append("(created_at, id) < (?, ?)")
        params += after
    params.append(query.limit + 1)
    sql = (
        f"SELECT {TASK_ROW} FROM tasks WHERE {' AND '.join(where)} "
        "ORDER BY created_at DESC, id DESC LIMIT ?"
    )
    return sql, params


# --- the guarded UPDATE ---------------------------------------------------------------------

_TERMINAL_VALUES: Final = frozenset(s.value for s in TERMINAL_STATUSES)
#: Sorted status values of each guard's status set (a handful of distinct sets).
_STATUS_VALUES: dict[frozenset[TaskStatus], tuple[str, ...]] = {}
#: UPDATE statements by shape (which optional parts are present): built once each.
_UPDATE_SQL: dict[tuple[Any, ...], str] = {}


def update_statement(guard: Guard, change: Change) -> tuple[str, list[Any]]:
    """``UPDATE tasks SET <change> WHERE <guard> RETURNING <task>``, with its parameters."""
    status = change.status
    running = status is TaskStatus.RUNNING
    statuses = _STATUS_VALUES.get(guard.statuses)
    if statuses is None:
        statuses = _STATUS_VALUES[guard.statuses] = tuple(sorted(s.value for s in guard.statuses))
    shape = (
        status.value,
        running and change.progress is not None,
        change.started_at is not None,
        change.sequence is not None,
        statuses,
        guard.sequence is not None,
        guard.owner is not None,
        guard.version is not None,
        None if guard.types is None else len(guard.types),
    )
    sql = _UPDATE_SQL.get(shape)
    if sql is None:
        sql = _UPDATE_SQL[shape] = _update_sql(*shape)
    now = change.updated_at
    stamp = time_text(now)
    params: list[Any] = [status.value, stamp]
    if running:
        if change.progress is not None:
            params.append(model_json(change.progress))
        params.append(epoch_us(now))
    # A change usually starts or finishes the task at the instant of the change itself.
    finished_at, started_at = change.finished_at, change.started_at
    params += [
        None if change.result is None else value_json(change.result),
        model_json(change.error),
        stamp if finished_at is now else time_text_or_none(finished_at),
        time_text_or_none(change.expires_at),
    ]
    if started_at is not None:
        params.append(stamp if started_at is now else time_text(started_at))
    if change.sequence is not None:
        params.append(change.sequence)
    params += [guard.task_id, *statuses]
    if guard.sequence is not None:
        params.append(guard.sequence)
    if guard.owner is not None:
        params.append(guard.owner)
    if guard.version is not None:
        params.append(guard.version)
    if guard.types is not None:
        params += sorted(guard.types)
    return sql, params


def _update_sql(  # noqa: PLR0917 (the fields of one shape key, in order)
    status: str,
    with_progress: bool,
    with_started: bool,
    with_sequence: bool,
    statuses: tuple[str, ...],
    guard_sequence: bool,
    guard_owner: bool,
    guard_version: bool,
    guard_types: int | None,
) -> str:
    sets = ["status = ?", "version = version + 1", "updated_at = ?"]
    if status == TaskStatus.RUNNING.value:
        if with_progress:
            sets.append("progress = ?")
        # due_us (the open deadline) stays; a task without a heartbeat period keeps NULL
        # here, so its update touches neither index (its first, from CREATED, clears a
        # start due time).
        sets.append(
            "heartbeat_due_us = CASE WHEN heartbeat_seconds IS NULL THEN NULL "
            "ELSE ? + heartbeat_seconds * 1000000 END"
        )
    else:
        sets.append("progress = NULL")
        sets.append("heartbeat_due_us = NULL")
        sets.append("due_us = NULL" if status in _TERMINAL_VALUES else "due_us = deadline_us")
    sets += ["result = ?", "error = ?", "finished_at = ?", "expires_at = ?"]
    if with_started:
        sets.append("started_at = coalesce(started_at, ?)")
    if with_sequence:
        sets.append("last_sequence = ?")
    where = [f"id = ? AND status IN ({', '.join('?' * len(statuses))})"]
    if guard_sequence:
        where.append("(last_sequence IS NULL OR last_sequence < ?)")
    if guard_owner:
        where.append("owner = ?")
    if guard_version:
        where.append("version = ?")
    if guard_types is not None:
        # SQLite takes an empty list too: then no task's type is in it.
        where.append(f"type IN ({', '.join('?' * guard_types)})")
    return f"UPDATE tasks SET {', '.join(sets)} WHERE {' AND '.join(where)} RETURNING {TASK_ROW}"
