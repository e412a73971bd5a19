"""A hypothesis state machine over everything that can happen to tasks.

Submits (with and without Idempotency-Key), processor updates with any status and any
sequence (or none), resends of earlier updates in any order, cancels by the owner or a
stranger, clock advances with the sweeper, and outbox dispatch, all on the real in-memory
adapters. After every step: terminal tasks never change, ``version`` counts the applied
changes, no progress after terminal, every applied change put exactly
``events_for_change(old, new)`` in the outbox, each task's event stream is a legal path of
``TRANSITIONS`` from ``TaskCreated``, and whatever was not applied changed nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from taskmanager.adapters.memory import (
    InMemoryEventBus,
    InMemoryTaskRepository,
    ManualClock,
    UuidIdFactory,
)
from taskmanager.domain.errors import (
    IdempotencyKeyReusedError,
    TaskAlreadyFinishedError,
    TaskNotFoundError,
)
from taskmanager.domain.events import TaskCreated, TaskUpdated, events_for_change
from taskmanager.domain.model import TRANSITIONS, SubmitTask, TaskStatus
from taskmanager.domain.services import (
    Policy,
    RejectReason,
    UpdateOutcome,
    cancel_task,
    dispatch_outbox,
    expire_overdue,
    get_task,
    idempotent_task_id,
    record_update,
    submit_task,
)

if TYPE_CHECKING:
    from taskmanager.domain.events import OutboundEvent
    from taskmanager.domain.model import Task

#: Short retention, so that finished records expire and keys are reused within a run.
POLICY = Policy(default_timeout_seconds=60, retention_seconds=400)
OWNERS = ("alice", "bob")
STATUSES = (TaskStatus.RUNNING, TaskStatus.SUCCESSFUL, TaskStatus.FAILED)
#: What a sender may report on: nothing, one of the two task types below, or both.
SENDER_TYPES: tuple[frozenset[str], ...] = (
    frozenset(),
    frozenset({"a"}),
    frozenset({"report.render", "text.wordcount"}),
    frozenset({"a", "report.render"}),
)

sequences = st.none() | st.integers(min_value=1, max_value=4)
keys = st.none() | st.sampled_from(["k1", "k2"])
commands = st.builds(
    SubmitTask,
    type=st.sampled_from(["a", "report.render"]),
    input=st.sampled_from([None, {"x": [1, 2]}]),
    timeout_seconds=st.sampled_from([None, 1, 30, 120]),
    heartbeat_seconds=st.sampled_from([None, 1, 5, 20]),
).filter(lambda c: (c.heartbeat_seconds or 0) <= (c.timeout_seconds or 60))
progress: st.SearchStrategy[dict[str, Any] | None] = st.none() | st.builds(
    dict, percent=st.integers(0, 100), message=st.none() | st.sampled_from(["", "half", "é"])
)
errors: st.SearchStrategy[dict[str, Any]] = st.builds(
    dict, code=st.sampled_from(["BOOM", "E1", "OUT_OF_MEMORY"]), message=st.text(max_size=5)
)
results: st.SearchStrategy[Any] = st.none() | st.integers() | st.builds(dict, n=st.integers(0, 3))


def _update(
    task_id: str, status: TaskStatus, sequence: int | None, data: st.DataObject
) -> TaskUpdated:
    body: dict[str, Any] = {"task_id": task_id, "status": status, "sequence": sequence}
    if status is TaskStatus.RUNNING:
        body["progress"] = data.draw(progress)
    elif status is TaskStatus.SUCCESSFUL:
        body["result"] = data.draw(results)
    else:
        body["error"] = data.draw(errors)
    return TaskUpdated.model_validate(body)


def _expected_outcome(  # noqa: PLR0911
    stored: Task | None, update: TaskUpdated, types: frozenset[str] | None = None
) -> tuple[UpdateOutcome, RejectReason | None]:
    """docs/design.md §3, restated independently of the implementation. ``types``: the task types
    the sender may report on (None: any)."""
    if types is not None and not types:
        return UpdateOutcome.REJECTED, RejectReason.SOURCE_NOT_ALLOWED
    if stored is None:
        return UpdateOutcome.REJECTED, RejectReason.UNKNOWN_TASK
    if types is not None and stored.type not in types:
        return UpdateOutcome.REJECTED, RejectReason.SOURCE_NOT_ALLOWED
    seq, last = update.sequence, stored.last_sequence
    if seq is not None and last is not None and seq < last:
        return UpdateOutcome.STALE, None
    if stored.status in (TaskStatus.SUCCESSFUL, TaskStatus.FAILED):
        if update.status is TaskStatus.RUNNING:
            return UpdateOutcome.STALE, None
        if update.status is stored.status:
            return UpdateOutcome.DUPLICATE, None
        return UpdateOutcome.REJECTED, RejectReason.ALREADY_FINISHED
    if seq is not None and last is not None and seq == last:
        if update.status is stored.status:
            return UpdateOutcome.DUPLICATE, None
        return UpdateOutcome.REJECTED, RejectReason.SEQUENCE_REUSED
    return UpdateOutcome.APPLIED, None


class TaskLifecycles(RuleBasedStateMachine):
    tasks = Bundle("tasks")

    def __init__(self) -> None:
        super().__init__()
        self.repo = InMemoryTaskRepository()
        self.clock = ManualClock()
        self.ids = UuidIdFactory()
        self.bus = InMemoryEventBus()
        self.delivered: list[OutboundEvent] = []
        self.bus.subscribe(self.delivered.append)
        self.applied: dict[str, int] = {}  # applied changes since the task was created
        self.terminal: dict[str, Task] = {}  # each finished task as it was when it finished
        self.owner: dict[str, str] = {}
        self.streams: dict[str, list[OutboundEvent]] = {}  # events of the current record
        self.logged_position = 0
        self.committed: list[OutboundEvent] = []  # every event, in commit order
        self.sent: list[TaskUpdated] = []
        self.submitted: list[tuple[str, str | None, SubmitTask]] = []

    # --- bookkeeping ---------------------------------------------------------------------

    def _new_events(self) -> list[OutboundEvent]:
        """Events committed since the last call, in commit order; each checked as a step of
        its task's stream."""
        entries = [e for e in self.repo.undelivered if e.position > self.logged_position]
        if entries:
            self.logged_position = entries[-1].position
        events = [e.event for e in entries]
        self.committed.extend(events)
        for outbound in events:
            if isinstance(outbound, TaskCreated):
                assert outbound.version == 1
                self.streams[outbound.id] = [outbound]
                continue
            stream = self.streams[outbound.id]
            previous = stream[-1]
            assert outbound.status in TRANSITIONS[previous.status], (previous, outbound)
            assert outbound.version == previous.version + 1
            stream.append(outbound)
        return events

    def _changed(self, old: Task | None, new: Task) -> None:
        """One applied change: exactly the events events_for_change says, nothing else."""
        assert self._new_events() == events_for_change(old, new)
        assert self.repo.get(new.id) == new
        if old is None:
            self.applied[new.id] = 0
            self.terminal.pop(new.id, None)
            self.owner[new.id] = new.owner
        else:
            assert old.id not in self.terminal, "a terminal task changed"
            self.applied[new.id] += 1
        if new.is_terminal:
            self.terminal[new.id] = new

    def _unchanged(self, task_id: str, before: Task | None) -> None:
        assert self.repo.get(task_id) is before
        assert self._new_events() == []

    # --- rules ---------------------------------------------------------------------------

    @initialize(target=tasks)
    def first_task(self) -> str:
        """Start with one task, so rules that need a task are enabled from the first step."""
        result = submit_task(
            SubmitTask(type="a", heartbeat_seconds=10),
            owner="alice",
            repo=self.repo,
            clock=self.clock,
            ids=self.ids,
            policy=POLICY,
        )
        self._changed(None, result.task)
        return result.task.id

    @rule(target=tasks, owner=st.sampled_from(OWNERS), key=keys, command=commands)
    def submit(self, owner: str, key: str | None, command: SubmitTask) -> Any:
        return self._submit(owner, key, command)

    @precondition(lambda self: bool(self.submitted))
    @rule(target=tasks, data=st.data())
    def submit_again(self, data: st.DataObject) -> Any:
        """A client retrying an earlier request (the same key and body, or a new key)."""
        owner, key, command = data.draw(st.sampled_from(self.submitted))
        return self._submit(owner, key, command)

    def _submit(self, owner: str, key: str | None, command: SubmitTask) -> Any:
        self.submitted.append((owner, key, command))
        existing = None if key is None else self.repo.get(idempotent_task_id(owner, key))
        now = self.clock.now()
        live = existing if existing is not None and not existing.is_expired(now) else None
        try:
            result = submit_task(
                command,
                owner=owner,
                repo=self.repo,
                clock=self.clock,
                ids=self.ids,
                policy=POLICY,
                idempotency_key=key,
            )
        except IdempotencyKeyReusedError:
            event("submit: key reused")
            assert live is not None
            self._unchanged(live.id, live)
            return multiple()
        if result.replayed:
            event("submit: replayed")
            assert live is not None
            assert result.task is live
            self._unchanged(live.id, live)
            return multiple()
        assert live is None
        if existing is not None:
            event("submit: key of an expired record starts a new task")
            assert result.task.id == existing.id
        self._changed(None, result.task)
        return result.task.id

    @rule(task_id=tasks, status=st.sampled_from(STATUSES), sequence=sequences, data=st.data())
    def update(
        self, task_id: str, status: TaskStatus, sequence: int | None, data: st.DataObject
    ) -> None:
        self._send(_update(task_id, status, sequence, data))

    @rule(
        task_id=tasks,
        status=st.sampled_from(STATUSES),
        sequence=sequences,
        types=st.sampled_from(SENDER_TYPES),
        data=st.data(),
    )
    def update_from_a_sender_of_some_types(
        self,
        task_id: str,
        status: TaskStatus,
        sequence: int | None,
        types: frozenset[str],
        data: st.DataObject,
    ) -> None:
        """A processor whose source may report on some task types only (in AWS)."""
        self._send(_update(task_id, status, sequence, data), types)

    @rule(status=st.sampled_from(STATUSES), data=st.data())
    def update_unknown_task(self, status: TaskStatus, data: st.DataObject) -> None:
        self._send(_update("no-such-task", status, None, data))

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def resend(self, data: st.DataObject) -> None:
        """At-least-once, unordered delivery: any earlier update may come again, any time."""
        self._send(data.draw(st.sampled_from(self.sent)))

    @precondition(lambda self: len(self.sent) >= 2)
    @rule(data=st.data())
    def resend_several_reordered(self, data: st.DataObject) -> None:
        batch = data.draw(st.lists(st.sampled_from(self.sent), min_size=2, max_size=4))
        for update in data.draw(st.permutations(batch)):
            self._send(update)

    @precondition(lambda self: any(u.sequence is not None for u in self.sent))
    @rule(data=st.data())
    def reuse_a_sequence_with_another_status(self, data: st.DataObject) -> None:
        """A processor bug: the same sequence number sent again with a different status."""
        earlier = data.draw(st.sampled_from([u for u in self.sent if u.sequence is not None]))
        status = data.draw(st.sampled_from([s for s in STATUSES if s is not earlier.status]))
        self._send(_update(earlier.task_id, status, earlier.sequence, data))

    def _send(self, update: TaskUpdated, types: frozenset[str] | None = None) -> None:
        before = self.repo.get(update.task_id)
        expected, reason = _expected_outcome(before, update, types)
        result = record_update(update, repo=self.repo, clock=self.clock, policy=POLICY, types=types)
        self.sent.append(update)
        assert result.outcome is expected, (result, update, before)
        assert result.reason is reason
        event(f"update: {result.outcome} {result.reason or ''}")
        if result.outcome is UpdateOutcome.APPLIED:
            assert result.task is not None
            assert result.task.status is update.status
            if update.sequence is not None:
                assert result.task.last_sequence == update.sequence
            self._changed(before, result.task)
        elif types is not None and not types:
            assert result.task is None  # refused before the store was asked
            self._unchanged(update.task_id, before)
        else:
            assert result.task is before
            self._unchanged(update.task_id, before)

    @rule(task_id=tasks, caller=st.sampled_from(OWNERS))
    def cancel(self, task_id: str, caller: str) -> None:
        before = self.repo.get(task_id)
        assert before is not None
        now = self.clock.now()
        try:
            task = cancel_task(
                task_id, owner=caller, repo=self.repo, clock=self.clock, policy=POLICY
            )
        except TaskNotFoundError:
            event("cancel: not found")
            assert before.owner != caller or before.is_expired(now)
            self._unchanged(task_id, before)
            return
        except TaskAlreadyFinishedError:
            event("cancel: already finished")
            assert before.owner == caller
            assert before.is_terminal
            self._unchanged(task_id, before)
            return
        assert before.owner == caller
        assert not before.is_terminal
        assert task.error is not None
        assert task.error.code == "CANCELLED"
        self._changed(before, task)

    @rule(seconds=st.sampled_from([0, 1, 4, 10, 25, 60, 500]))
    def advance_and_sweep(self, seconds: int) -> None:
        self.clock.advance(seconds)
        now = self.clock.now()
        before = {t: self.repo.get(t) for t in self.applied}
        expired = expire_overdue(repo=self.repo, clock=self.clock, policy=POLICY)
        for task in expired:
            old = before[task.id]
            assert old is not None
            assert not old.is_terminal
            assert task.error is not None
            if old.deadline_at <= now:
                assert task.error.code == "TIMEOUT"
            else:
                assert task.error.code == "HEARTBEAT_TIMEOUT"
                assert old.heartbeat_due_at is not None
                assert old.heartbeat_due_at <= now
        committed = self._new_events()
        assert committed == [e for t in expired for e in events_for_change(before[t.id], t)]
        expired_ids = {t.id for t in expired}
        for task in expired:
            event(f"sweep: {task.error.code if task.error else None}")
            assert task.id not in self.terminal
            self.applied[task.id] += 1
            self.terminal[task.id] = task
        for task_id, old in before.items():
            if task_id not in expired_ids:
                assert self.repo.get(task_id) is old
        # Nothing open is left overdue.
        for task_id in self.applied:
            current = self.repo.get(task_id)
            assert current is not None
            due = current.due_at
            assert due is None or due > now

    @rule(limit=st.sampled_from([1, 3, 100]))
    def dispatch(self, limit: int) -> None:
        self._new_events()
        pending = [e.event for e in self.repo.undelivered]
        count = dispatch_outbox(self.repo, self.bus, limit=limit)
        assert count == min(limit, len(pending))
        assert [e.event for e in self.repo.undelivered] == pending[count:]

    @rule(task_id=tasks, caller=st.sampled_from(OWNERS))
    def read(self, task_id: str, caller: str) -> None:
        stored = self.repo.get(task_id)
        assert stored is not None
        try:
            task = get_task(task_id, owner=caller, repo=self.repo, clock=self.clock)
        except TaskNotFoundError:
            event("read: not found")
            assert stored.owner != caller or stored.is_expired(self.clock.now())
        else:
            assert task is stored
            assert task.owner == caller

    # --- invariants ----------------------------------------------------------------------

    @invariant()
    def every_task_obeys_the_rules(self) -> None:
        assert self._new_events() == []  # every committed event was accounted for by a rule
        for task_id, applied in self.applied.items():
            task = self.repo.get(task_id)
            assert task is not None
            assert task.version == applied + 1
            assert task.owner == self.owner[task_id]
            if task.is_terminal:
                assert task.progress is None
                assert self.terminal[task_id] == task  # terminal never changes
                assert (task.error is not None) == (task.status is TaskStatus.FAILED)
                assert task.finished_at is not None
                assert task.expires_at == task.finished_at + POLICY.retention
            else:
                assert task_id not in self.terminal
                assert task.error is None
                assert task.result is None
                assert task.finished_at is None
            if task.status is not TaskStatus.RUNNING:
                assert task.progress is None
            stream = self.streams[task_id]
            assert [e.version for e in stream] == list(range(1, task.version + 1))
            assert stream[-1].status is task.status

    @invariant()
    def the_outbox_holds_exactly_what_was_not_delivered(self) -> None:
        """Dispatch delivers in commit order, each committed event once."""
        pending = [e.event for e in self.repo.undelivered]
        sent = len(self.delivered)
        assert sent + len(pending) == len(self.committed)
        assert self.delivered == self.committed[:sent]
        assert pending == self.committed[sent:]


TaskLifecycles.TestCase.settings = settings(stateful_step_count=30)
TestTaskLifecycles = TaskLifecycles.TestCase
