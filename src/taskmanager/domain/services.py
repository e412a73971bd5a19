"""Use cases. Each takes a command and ports, decides with pure functions and asks the
repository for one guarded write. Nothing here reads and then writes unguarded.

The pure deciding steps (``new_task``, ``plan_update``, ``classify_refusal``,
``plan_cancel``, ``plan_expiry``) are public so that they can be tested and measured alone.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING, Final

import msgspec

from taskmanager.domain.errors import (
    IdempotencyKeyReusedError,
    InvalidCommandError,
    InvalidRequestError,
    PublishError,
    StorageError,
    TaskAlreadyFinishedError,
    TaskNotFoundError,
    UnknownTaskTypeError,
)
from taskmanager.domain.model import (
    DEFAULT_LIST_LIMIT,
    DEFAULT_RETENTION_SECONDS,
    DEFAULT_TIMEOUT_SECONDS,
    MAX_LIST_LIMIT,
    MAX_TIMEOUT_SECONDS,
    MIN_TIMEOUT_SECONDS,
    Change,
    ErrorCode,
    Guard,
    SubmitTask,
    Task,
    TaskError,
    TaskStatus,
    ensure_payload_size,
    validate_idempotency_key,
)
from taskmanager.domain.ports import ListQuery, Page

if TYPE_CHECKING:
    from taskmanager.domain.events import TaskUpdated
    from taskmanager.domain.ports import (
        Clock,
        EventPublisher,
        IdFactory,
        Outbox,
        TaskRepository,
    )

#: Namespace of the deterministic ids derived from (owner, Idempotency-Key).
IDEMPOTENCY_NAMESPACE: Final = uuid.UUID("5b0f3c1e-8d0a-4c57-9a43-2f1d6f0e7a11")


@dataclass(frozen=True)
class Policy:
    """Deployment settings the rules depend on.

    - ``default_start_timeout_seconds``: the start timeout of a task submitted without one
      (None: no start timeout); it applies only to tasks whose timeout is at least as long;
    - ``task_types``: the task types a submit may name, those some processor of the
      deployment takes (None: any type, for processors the deployment does not know of).
    """

    default_timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    retention_seconds: int = DEFAULT_RETENTION_SECONDS
    default_start_timeout_seconds: int | None = None
    task_types: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if not MIN_TIMEOUT_SECONDS <= self.default_timeout_seconds <= MAX_TIMEOUT_SECONDS:
            raise ValueError("default_timeout_seconds must be within 1..604800")
        if self.retention_seconds < 1:
            raise ValueError("retention_seconds must be at least 1")
        start = self.default_start_timeout_seconds
        if start is not None and not MIN_TIMEOUT_SECONDS <= start <= MAX_TIMEOUT_SECONDS:
            raise ValueError("default_start_timeout_seconds must be within 1..604800")

    @cached_property
    def retention(self) -> timedelta:
        """How long a finished task stays readable (computed once: every finish reads it)."""
        return timedelta(seconds=self.retention_seconds)


DEFAULT_POLICY: Final = Policy()


class SubmitResult(msgspec.Struct, frozen=True, kw_only=True):
    task: Task
    replayed: bool


class UpdateOutcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"
    REJECTED = "rejected"


class RejectReason(StrEnum):
    UNKNOWN_TASK = "UNKNOWN_TASK"
    ALREADY_FINISHED = "ALREADY_FINISHED"
    SEQUENCE_REUSED = "SEQUENCE_REUSED"
    #: The update came from a processor that may not report on tasks of this type.
    SOURCE_NOT_ALLOWED = "SOURCE_NOT_ALLOWED"


class UpdateResult(msgspec.Struct, frozen=True, kw_only=True):
    outcome: UpdateOutcome
    task: Task | None
    reason: RejectReason | None = None
    detail: str | None = None


# --- submit ---------------------------------------------------------------------------------


def idempotent_task_id(owner: str, key: str) -> str:
    """The same (owner, key) always names the same task; another owner's key never collides."""
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{owner}\x00{key}"))


def request_fingerprint(command: SubmitTask) -> str:
    canonical = json.dumps(
        command.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def new_task(
    command: SubmitTask,
    *,
    task_id: str,
    owner: str,
    now: datetime,
    policy: Policy = DEFAULT_POLICY,
    idempotency_key: str | None = None,
    fingerprint: str | None = None,
) -> Task:
    ensure_type_known(command.type, policy)
    ensure_payload_size(command.input, "input")
    timeout = command.timeout_seconds or policy.default_timeout_seconds
    heartbeat = command.heartbeat_seconds
    if heartbeat is not None and heartbeat > timeout:
        raise InvalidCommandError(
            f"heartbeat_seconds ({heartbeat}) may not exceed timeout_seconds ({timeout})",
            details={"field": "heartbeat_seconds"},
        )
    start_timeout = command.start_timeout_seconds
    if start_timeout is not None and start_timeout > timeout:
        raise InvalidCommandError(
            f"start_timeout_seconds ({start_timeout}) may not exceed timeout_seconds ({timeout})",
            details={"field": "start_timeout_seconds"},
        )
    if start_timeout is None:
        start_timeout = policy.default_start_timeout_seconds
        if start_timeout is not None and start_timeout > timeout:
            start_timeout = None  # the deadline comes first anyway
    return Task(
        id=task_id,
        owner=owner,
        type=command.type,
        status=TaskStatus.CREATED,
        input=command.input,
        version=1,
        created_at=now,
        updated_at=now,
        deadline_at=now + timedelta(seconds=timeout),
        heartbeat_seconds=heartbeat,
        start_timeout_seconds=start_timeout,
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint,
    )


def ensure_type_known(task_type: str, policy: Policy = DEFAULT_POLICY) -> None:
    """Refuse a task type that no processor takes, where the policy names the types."""
    if policy.task_types is not None and task_type not in policy.task_types:
        raise UnknownTaskTypeError(task_type, sorted(policy.task_types))


def submit_task(
    command: SubmitTask,
    *,
    owner: str,
    repo: TaskRepository,
    clock: Clock,
    ids: IdFactory,
    policy: Policy = DEFAULT_POLICY,
    idempotency_key: str | None = None,
) -> SubmitResult:
    """Create a task; with an Idempotency-Key, replay the same request's task instead."""
    now = clock.now()
    if idempotency_key is None:
        task_id, fingerprint = ids.new_id(), None
    else:
        validate_idempotency_key(idempotency_key)
        task_id = idempotent_task_id(owner, idempotency_key)
        fingerprint = request_fingerprint(command)
    task = new_task(
        command,
        task_id=task_id,
        owner=owner,
        now=now,
        policy=policy,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint,
    )
    written = repo.create(task, now)
    existing = written.task
    if written.applied and existing is not None:
        return SubmitResult(task=existing, replayed=False)
    if existing is None:
        raise StorageError(f"store refused task {task_id} without returning the existing one")
    if (
        idempotency_key is not None
        and existing.owner == owner
        and existing.idempotency_key == idempotency_key
        and existing.request_fingerprint == fingerprint
    ):
        return SubmitResult(task=existing, replayed=True)
    if idempotency_key is not None:
        raise IdempotencyKeyReusedError(task_id)
    raise StorageError(f"task id {task_id} collided with an existing task")


# --- read -----------------------------------------------------------------------------------


def get_task(task_id: str, *, owner: str, repo: TaskRepository, clock: Clock) -> Task:
    """The caller's task; another owner's task or an expired one is not found."""
    task = repo.get(task_id)
    if task is None or task.owner != owner or task.is_expired(clock.now()):
        raise TaskNotFoundError(task_id)
    return task


def list_tasks(
    *,
    owner: str,
    repo: TaskRepository,
    clock: Clock,
    status: TaskStatus | None = None,
    type: str | None = None,
    limit: int = DEFAULT_LIST_LIMIT,
    cursor: str | None = None,
) -> Page:
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise InvalidRequestError(
            f"limit must be between 1 and {MAX_LIST_LIMIT}", details={"field": "limit"}
        )
    query = ListQuery(owner=owner, limit=limit, status=status, type=type, cursor=cursor)
    return repo.list_page(query, clock.now())


# --- processor updates ----------------------------------------------------------------------


def plan_update(
    update: TaskUpdated,
    now: datetime,
    policy: Policy = DEFAULT_POLICY,
    *,
    types: frozenset[str] | None = None,
) -> tuple[Guard, Change]:
    """The guarded change an update asks for. It applies iff the task is still open, the
    update's sequence (if any) is above the last one recorded and, when ``types`` is given
    (the task types the update's sender may report on), the task is of one of them."""
    status, sequence = update.status, update.sequence
    guard = Guard(task_id=update.task_id, sequence=sequence, types=types)
    if status is TaskStatus.RUNNING:
        change = Change(
            status=status,
            updated_at=now,
            progress=update.progress,
            started_at=now,
            sequence=sequence,
        )
    else:
        change = Change(
            status=status,
            updated_at=now,
            result=update.result,
            error=update.error,
            started_at=now,
            finished_at=now,
            expires_at=now + policy.retention,
            sequence=sequence,
        )
    return guard, change


def classify_refusal(  # noqa: PLR0911
    stored: Task | None, update: TaskUpdated, types: frozenset[str] | None = None
) -> UpdateResult:
    """Why an update whose guard failed did not apply (docs/design.md §3). ``types`` is what
    :func:`plan_update` was given: a sender reporting on another type is refused first, so
    that nothing it sends is taken for a duplicate or a late report."""
    if stored is None:
        return UpdateResult(
            outcome=UpdateOutcome.REJECTED,
            task=None,
            reason=RejectReason.UNKNOWN_TASK,
            detail="no such task",
        )
    if types is not None and stored.type not in types:
        return UpdateResult(
            outcome=UpdateOutcome.REJECTED,
            task=stored,
            reason=RejectReason.SOURCE_NOT_ALLOWED,
            detail=f"the sender may not report on tasks of type {stored.type}",
        )
    last, seq = stored.last_sequence, update.sequence
    if seq is not None and last is not None and seq < last:
        return UpdateResult(
            outcome=UpdateOutcome.STALE, task=stored, detail=f"sequence {seq} < {last}"
        )
    if stored.is_terminal:
        if update.status is TaskStatus.RUNNING:
            return UpdateResult(
                outcome=UpdateOutcome.STALE, task=stored, detail="RUNNING after terminal"
            )
        if update.status is stored.status:
            return UpdateResult(outcome=UpdateOutcome.DUPLICATE, task=stored)
        return UpdateResult(
            outcome=UpdateOutcome.REJECTED,
            task=stored,
            reason=RejectReason.ALREADY_FINISHED,
            detail=f"task already {stored.status}, update says {update.status}",
        )
    # Open task: only the sequence bound can have failed, so seq == last.
    if update.status is stored.status:
        return UpdateResult(outcome=UpdateOutcome.DUPLICATE, task=stored)
    return UpdateResult(
        outcome=UpdateOutcome.REJECTED,
        task=stored,
        reason=RejectReason.SEQUENCE_REUSED,
        detail=f"sequence {seq} already recorded with status {stored.status}",
    )


def record_update(
    update: TaskUpdated,
    *,
    repo: TaskRepository,
    clock: Clock,
    policy: Policy = DEFAULT_POLICY,
    types: frozenset[str] | None = None,
) -> UpdateResult:
    """Apply a processor's update: applied, duplicate, stale or rejected; never raises for
    an update that is merely late, repeated or illegal.

    ``types``: the task types the update's sender may report on, checked in the same
    guarded write (None: any type, as inside one process)."""
    if types is not None and not types:
        # A sender allowed no type at all: refused without touching the store.
        return UpdateResult(
            outcome=UpdateOutcome.REJECTED,
            task=None,
            reason=RejectReason.SOURCE_NOT_ALLOWED,
            detail="the sender may not report on any task type",
        )
    guard, change = plan_update(update, clock.now(), policy, types=types)
    written = repo.apply(guard, change)
    if written.applied:
        return UpdateResult(outcome=UpdateOutcome.APPLIED, task=written.task)
    return classify_refusal(written.task, update, types)


# --- cancel and timeouts --------------------------------------------------------------------


def _failure(code: ErrorCode, message: str, now: datetime, policy: Policy) -> Change:
    return Change(
        status=TaskStatus.FAILED,
        updated_at=now,
        error=TaskError.model_construct(code=code.value, message=message),
        finished_at=now,
        expires_at=now + policy.retention,
    )


#: The error message of a cancelled task. Only the task's owner may cancel it, so it is
#: always the client that submitted it (or another client with the same identity).
CANCELLED_MESSAGE: Final = "cancelled by the client that submitted it"


def plan_cancel(
    task_id: str, owner: str, now: datetime, policy: Policy = DEFAULT_POLICY
) -> tuple[Guard, Change]:
    guard = Guard(task_id=task_id, owner=owner)
    return guard, _failure(ErrorCode.CANCELLED, CANCELLED_MESSAGE, now, policy)


def cancel_task(
    task_id: str,
    *,
    owner: str,
    repo: TaskRepository,
    clock: Clock,
    policy: Policy = DEFAULT_POLICY,
) -> Task:
    """Fail an open task with CANCELLED. 404 for others' tasks, 409 once terminal."""
    now = clock.now()
    guard, change = plan_cancel(task_id, owner, now, policy)
    written = repo.apply(guard, change)
    task = written.task
    if written.applied and task is not None:
        return task
    if task is None or task.owner != owner or task.is_expired(now):
        raise TaskNotFoundError(task_id)
    raise TaskAlreadyFinishedError(task_id, task.status)


def plan_expiry(
    task: Task, now: datetime, policy: Policy = DEFAULT_POLICY
) -> tuple[Guard, Change] | None:
    """TIMEOUT past the deadline; else HEARTBEAT_TIMEOUT past a quiet heartbeat, or
    START_TIMEOUT for a task nobody picked up in time; else None.

    The guard pins the version that was read, so an update arriving meanwhile wins."""
    if task.is_terminal:
        return None
    guard = Guard(task_id=task.id, version=task.version)
    if task.deadline_at <= now:
        seconds = int((task.deadline_at - task.created_at).total_seconds())
        message = f"task did not finish within timeout_seconds ({seconds})"
        return guard, _failure(ErrorCode.TIMEOUT, message, now, policy)
    start_due = task.start_due_at
    if start_due is not None and start_due <= now:
        message = (
            "no processor picked the task up within "
            f"start_timeout_seconds ({task.start_timeout_seconds})"
        )
        return guard, _failure(ErrorCode.START_TIMEOUT, message, now, policy)
    heartbeat_due = task.heartbeat_due_at
    if heartbeat_due is not None and heartbeat_due <= now:
        message = f"no update within heartbeat_seconds ({task.heartbeat_seconds})"
        return guard, _failure(ErrorCode.HEARTBEAT_TIMEOUT, message, now, policy)
    return None


def expire_overdue(
    *,
    repo: TaskRepository,
    clock: Clock,
    policy: Policy = DEFAULT_POLICY,
    limit: int = 100,
) -> list[Task]:
    """Fail every open task whose start timeout, deadline or heartbeat has passed; returns
    those failed."""
    now = clock.now()
    expired: list[Task] = []
    for task in repo.due(now, limit):
        plan = plan_expiry(task, now, policy)
        if plan is None:
            continue
        written = repo.apply(*plan)
        if written.applied and written.task is not None:
            expired.append(written.task)
    return expired


# --- outbox ---------------------------------------------------------------------------------


def dispatch_outbox(outbox: Outbox, publisher: EventPublisher, *, limit: int = 100) -> int:
    """Deliver the oldest pending events; marks what was delivered, even on partial failure.

    Returns how many were delivered; re-raises ``PublishError`` after marking the rest."""
    entries = outbox.pending(limit)
    if not entries:
        return 0
    try:
        publisher.publish([entry.event for entry in entries])
    except PublishError as exc:
        failed = set(exc.failed_event_ids)
        delivered = [e.position for e in entries if e.event.event_id not in failed]
        outbox.mark_delivered(delivered)
        raise
    outbox.mark_delivered([entry.position for entry in entries])
    return len(entries)
