"""The one abstract test suite of the ``TaskRepository`` port.

Every storage adapter runs these same tests through the use cases (``test_*_contract.py``
subclasses :class:`RepositoryContract` and provides a :class:`Store`), so the in-memory
adapter fails exactly like the databases do. :class:`CoreRepositoryContract` is the subset
that also runs against moto server over real HTTP.
"""

from __future__ import annotations

import base64
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from taskmanager.adapters.memory import ManualClock, UuidIdFactory
from taskmanager.domain.errors import (
    IdempotencyKeyReusedError,
    InvalidCursorError,
    TaskAlreadyFinishedError,
    TaskNotFoundError,
)
from taskmanager.domain.events import TaskUpdated
from taskmanager.domain.model import (
    OPEN_STATUSES,
    TRANSITIONS,
    Change,
    Guard,
    SubmitTask,
    Task,
    TaskStatus,
    apply_change,
)
from taskmanager.domain.services import (
    DEFAULT_POLICY,
    RejectReason,
    UpdateOutcome,
    cancel_task,
    expire_overdue,
    get_task,
    list_tasks,
    plan_update,
    record_update,
    submit_task,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from taskmanager.domain.events import OutboundEvent
    from taskmanager.domain.ports import TaskRepository


@dataclass
class Store:
    """An adapter under test and a way to read back the events its commits produced
    (the outbox table, or the DynamoDB stream decoded by ``task_from_image``)."""

    repo: TaskRepository
    committed_events: Callable[[], list[OutboundEvent]]
    extra: dict[str, Any] = field(default_factory=dict)


def update(task_id: str, status: str, sequence: int | None = None, **fields: Any) -> TaskUpdated:
    body: dict[str, Any] = {"task_id": task_id, "status": status, **fields}
    if sequence is not None:
        body["sequence"] = sequence
    if status == "FAILED" and "error" not in fields:
        body["error"] = {"code": "BOOM", "message": "it broke"}
    return TaskUpdated.model_validate(body)


def _to_status(task_id: str, status: TaskStatus) -> TaskUpdated:
    return update(task_id, status.value)


class CoreRepositoryContract:
    """The behaviours every adapter must share (also run over real HTTP on moto server)."""

    @pytest.fixture
    def clock(self) -> ManualClock:
        return ManualClock()

    @pytest.fixture
    def store(self, tmp_path: Any) -> Store:
        """Overridden by every adapter's test class."""
        raise TypeError(f"{type(self).__name__} must provide a store fixture")

    @pytest.fixture
    def repo(self, store: Store) -> TaskRepository:
        return store.repo

    def submit(
        self,
        repo: TaskRepository,
        clock: ManualClock,
        owner: str = "alice",
        key: str | None = None,
        **command: Any,
    ) -> Task:
        body = {"type": "report.render", "input": {"rows": 10}, **command}
        return submit_task(
            SubmitTask.model_validate(body),
            owner=owner,
            repo=repo,
            clock=clock,
            ids=UuidIdFactory(),
            idempotency_key=key,
        ).task

    # -- submit and read ---------------------------------------------------------------------
    def test_submitted_task_reads_back_field_for_field(
        self, repo: TaskRepository, clock: ManualClock
    ) -> None:
        task = self.submit(
            repo, clock, input={"nested": [1, 2.5, "x", None, {"u": "é"}]}, heartbeat_seconds=30
        )
        assert task.status is TaskStatus.CREATED
        assert task.version == 1
        assert repo.get(task.id) == task

    def test_unknown_task_reads_as_none(self, repo: TaskRepository) -> None:
        assert repo.get("00000000-0000-4000-8000-000000000000") is None

    def test_replay_with_same_key_returns_the_same_task_without_a_second_event(
        self, store: Store, clock: ManualClock
    ) -> None:
        first = self.submit(store.repo, clock, key="order-17")
        clock.advance(5)
        again = submit_task(
            SubmitTask(type="report.render", input={"rows": 10}),
            owner="alice",
            repo=store.repo,
            clock=clock,
            ids=UuidIdFactory(),
            idempotency_key="order-17",
        )
        assert again.replayed
        assert again.task == first
        assert [e.event_id for e in store.committed_events()] == [f"{first.id}:1"]

    def test_same_key_with_a_different_request_is_refused(
        self, repo: TaskRepository, clock: ManualClock
    ) -> None:
        self.submit(repo, clock, key="order-17")
        with pytest.raises(IdempotencyKeyReusedError):
            self.submit(repo, clock, key="order-17", input={"rows": 11})

    def test_same_key_for_two_owners_makes_two_tasks(
        self, repo: TaskRepository, clock: ManualClock
    ) -> None:
        a = self.submit(repo, clock, owner="alice", key="k")
        b = self.submit(repo, clock, owner="bob", key="k")
        assert a.id != b.id
        assert repo.get(a.id) == a
        assert repo.get(b.id) == b

    # -- transitions -------------------------------------------------------------------------
    def test_full_lifecycle_applies_and_emits_one_event_per_change(
        self, store: Store, clock: ManualClock
    ) -> None:
        repo = store.repo
        task = self.submit(repo, clock)
        steps = [
            update(task.id, "RUNNING", 1),
            update(task.id, "RUNNING", 2, progress={"percent": 50, "message": "half"}),
            update(task.id, "SUCCESSFUL", 3, result={"pages": 12}),
        ]
        for step in steps:
            clock.advance(1)
            result = record_update(step, repo=repo, clock=clock)
            assert result.outcome is UpdateOutcome.APPLIED
        final = repo.get(task.id)
        assert final is not None
        assert final.status is TaskStatus.SUCCESSFUL
        assert final.version == 4
        assert final.result == {"pages": 12}
        assert final.progress is None
        assert final.last_sequence == 3
        assert final.expires_at == final.updated_at + DEFAULT_POLICY.retention
        events = store.committed_events()
        assert [e.event_id for e in events] == [f"{task.id}:{v}" for v in (1, 2, 3, 4)]
        assert [e.DETAIL_TYPE for e in events] == [
            "TaskCreated",
            "TaskRunning",
            "TaskRunning",
            "TaskSuccessful",
        ]

    def test_racing_terminal_updates_have_exactly_one_winner(
        self, store: Store, clock: ManualClock
    ) -> None:
        repo = store.repo
        task = self.submit(repo, clock)
        threads = 16
        barrier = threading.Barrier(threads)
        outcomes: list[tuple[str, UpdateOutcome, RejectReason | None]] = []
        lock = threading.Lock()

        def contender(n: int) -> None:
            status = "SUCCESSFUL" if n % 2 else "FAILED"
            body = update(task.id, status, result={"by": n} if status == "SUCCESSFUL" else None)
            barrier.wait()
            result = record_update(body, repo=repo, clock=clock)
            with lock:
                outcomes.append((status, result.outcome, result.reason))

        workers = [threading.Thread(target=contender, args=(n,)) for n in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        counts = Counter(outcome for _, outcome, _ in outcomes)
        assert counts[UpdateOutcome.APPLIED] == 1, outcomes
        final = repo.get(task.id)
        assert final is not None
        assert final.version == 2
        winner = final.status
        for status, outcome, reason in outcomes:
            if outcome is UpdateOutcome.APPLIED:
                assert status == winner
            elif status == winner:
                assert outcome is UpdateOutcome.DUPLICATE
            else:
                assert outcome is UpdateOutcome.REJECTED
                assert reason is RejectReason.ALREADY_FINISHED
        events = store.committed_events()
        assert [e.event_id for e in events] == [f"{task.id}:1", f"{task.id}:2"]
        assert events[-1].status is winner

    def test_a_sender_reports_only_on_the_task_types_it_is_allowed(
        self, store: Store, clock: ManualClock
    ) -> None:
        """The type check is part of the guarded write: a refused sender changes nothing and
        is told apart from a duplicate, even once the task is finished."""
        repo = store.repo
        task = self.submit(repo, clock)  # a report.render task
        events_before = len(store.committed_events())
        others = frozenset({"text.wordcount", "image.resize"})
        clock.advance(1)

        refused = record_update(
            update(task.id, "SUCCESSFUL", 1, result=1), repo=repo, clock=clock, types=others
        )
        assert refused.outcome is UpdateOutcome.REJECTED
        assert refused.reason is RejectReason.SOURCE_NOT_ALLOWED
        assert refused.task == task
        nobody = record_update(
            update(task.id, "RUNNING", 2), repo=repo, clock=clock, types=frozenset()
        )
        assert (nobody.outcome, nobody.reason) == (
            UpdateOutcome.REJECTED,
            RejectReason.SOURCE_NOT_ALLOWED,
        )
        assert repo.get(task.id) == task
        assert len(store.committed_events()) == events_before

        allowed = others | {"report.render"}
        done = record_update(
            update(task.id, "SUCCESSFUL", 3, result=1), repo=repo, clock=clock, types=allowed
        )
        assert done.outcome is UpdateOutcome.APPLIED
        again = record_update(
            update(task.id, "SUCCESSFUL", 3, result=1), repo=repo, clock=clock, types=others
        )
        assert (again.outcome, again.reason) == (
            UpdateOutcome.REJECTED,
            RejectReason.SOURCE_NOT_ALLOWED,
        )
        assert repo.get(task.id) == done.task
        assert len(store.committed_events()) == events_before + 1

    def test_type_guard_holds_only_for_a_task_of_a_listed_type(
        self, repo: TaskRepository, clock: ManualClock
    ) -> None:
        task = self.submit(repo, clock)  # a report.render task
        change = Change(status=TaskStatus.RUNNING, updated_at=clock.now())
        for types in (frozenset(), frozenset({"report"}), frozenset({"a", "render", "b"})):
            written = repo.apply(Guard(task_id=task.id, types=types), change)
            assert (written.applied, written.task) == (False, task), types
        both = frozenset({"report.render", "text.wordcount"})
        written = repo.apply(Guard(task_id=task.id, types=both), change)
        assert written.applied
        assert written.task is not None
        assert written.task.version == 2

    def test_owner_isolation_on_get_cancel_and_list(
        self, repo: TaskRepository, clock: ManualClock
    ) -> None:
        task = self.submit(repo, clock, owner="alice")
        with pytest.raises(TaskNotFoundError):
            get_task(task.id, owner="mallory", repo=repo, clock=clock)
        with pytest.raises(TaskNotFoundError):
            cancel_task(task.id, owner="mallory", repo=repo, clock=clock)
        assert repo.get(task.id) == task
        assert list_tasks(owner="mallory", repo=repo, clock=clock).items == []
        assert [t.id for t in list_tasks(owner="alice", repo=repo, clock=clock).items] == [task.id]

    def test_list_pages_newest_first_with_a_cursor(
        self, repo: TaskRepository, clock: ManualClock
    ) -> None:
        made = []
        for _ in range(5):
            made.append(self.submit(repo, clock).id)
            clock.advance(1)
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            page = list_tasks(owner="alice", repo=repo, clock=clock, limit=2, cursor=cursor)
            pages += 1
            seen += [t.id for t in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == list(reversed(made))
        assert pages == 3

    @pytest.mark.parametrize(
        "cursor",
        [
            "not a cursor",
            "!!!!",
            base64.urlsafe_b64encode(b"{}").decode(),
            base64.urlsafe_b64encode(b'["2026-01-01T00:00:00.000000Z"]').decode(),
            base64.urlsafe_b64encode(b"[1, 2]").decode(),
            "",
            "a.b.c",
        ],
    )
    def test_a_cursor_that_was_not_issued_is_refused(
        self, repo: TaskRepository, clock: ManualClock, cursor: str
    ) -> None:
        self.submit(repo, clock)
        if cursor == "":
            # An empty cursor is no cursor: the first page.
            assert len(list_tasks(owner="alice", repo=repo, clock=clock, cursor="").items) == 1
            return
        with pytest.raises(InvalidCursorError):
            list_tasks(owner="alice", repo=repo, clock=clock, cursor=cursor)

    # -- the start timeout (also over HTTP: the sweeper's index on DynamoDB) ------------------
    def test_a_task_nobody_picks_up_in_time_fails_with_start_timeout(
        self, store: Store, clock: ManualClock
    ) -> None:
        repo = store.repo
        waiting = self.submit(repo, clock, timeout_seconds=600, start_timeout_seconds=30)
        started = self.submit(repo, clock, timeout_seconds=600, start_timeout_seconds=30)
        plain = self.submit(repo, clock, timeout_seconds=600)
        assert repo.get(waiting.id) == waiting
        assert waiting.start_timeout_seconds == 30
        clock.advance(29)
        running = record_update(update(started.id, "RUNNING", 1), repo=repo, clock=clock).task
        assert repo.due(clock.now(), 10) == []
        clock.advance(1)
        assert [t.id for t in repo.due(clock.now(), 10)] == [waiting.id]
        failed = expire_overdue(repo=repo, clock=clock)
        assert [t.id for t in failed] == [waiting.id]
        stored = repo.get(waiting.id)
        assert stored is not None
        assert stored.status is TaskStatus.FAILED
        assert stored.error is not None
        assert stored.error.code == "START_TIMEOUT"
        assert stored.error.message == (
            "no processor picked the task up within start_timeout_seconds (30)"
        )
        # The task that started in time, and the one without a start timeout, are untouched.
        assert repo.get(started.id) == running
        assert repo.get(plain.id) == plain
        assert repo.due(clock.now(), 10) == []
        assert expire_overdue(repo=repo, clock=clock) == []
        failures = [e for e in store.committed_events() if e.DETAIL_TYPE == "TaskFailed"]
        assert [(e.id, e.error.code if e.error else None) for e in failures] == [
            (waiting.id, "START_TIMEOUT")
        ]

    def test_a_task_that_starts_in_time_is_due_only_at_its_deadline(
        self, repo: TaskRepository, clock: ManualClock
    ) -> None:
        task = self.submit(repo, clock, timeout_seconds=100, start_timeout_seconds=10)
        record_update(update(task.id, "RUNNING", 1), repo=repo, clock=clock)
        clock.advance(99)
        assert repo.due(clock.now(), 10) == []
        clock.advance(1)
        [due] = repo.due(clock.now(), 10)
        assert due.id == task.id
        [failed] = expire_overdue(repo=repo, clock=clock)
        assert failed.error is not None
        assert failed.error.code == "TIMEOUT"


class RepositoryContract(CoreRepositoryContract):
    """Everything else: every transition, classification, lists, the sweeper, expiry."""

    # -- every transition, legal and illegal -------------------------------------------------
    def _task_in(self, repo: TaskRepository, clock: ManualClock, status: TaskStatus) -> Task:
        task = self.submit(repo, clock)
        if status is not TaskStatus.CREATED:
            clock.advance(1)
            assert (
                record_update(_to_status(task.id, status), repo=repo, clock=clock).outcome
                is UpdateOutcome.APPLIED
            )
        stored = repo.get(task.id)
        assert stored is not None
        return stored

    @pytest.mark.parametrize(
        ("start", "target"),
        [
            (start, target)
            for start in TaskStatus
            for target in (TaskStatus.RUNNING, TaskStatus.SUCCESSFUL, TaskStatus.FAILED)
        ],
    )
    def test_every_transition_is_applied_or_classified_as_the_state_machine_says(
        self, store: Store, clock: ManualClock, start: TaskStatus, target: TaskStatus
    ) -> None:
        repo = store.repo
        before = self._task_in(repo, clock, start)
        events_before = len(store.committed_events())
        clock.advance(1)
        body = _to_status(before.id, target)
        _guard, change = plan_update(body, clock.now())
        result = record_update(body, repo=repo, clock=clock)
        after = repo.get(before.id)
        if target in TRANSITIONS[start]:
            assert result.outcome is UpdateOutcome.APPLIED
            assert result.task == apply_change(before, change)
            assert after == result.task
            assert len(store.committed_events()) == events_before + 1
            return
        assert after == before
        assert result.task == before
        assert len(store.committed_events()) == events_before
        if target is TaskStatus.RUNNING:
            assert result.outcome is UpdateOutcome.STALE
        elif target is start:
            assert result.outcome is UpdateOutcome.DUPLICATE
        else:
            assert result.outcome is UpdateOutcome.REJECTED
            assert result.reason is RejectReason.ALREADY_FINISHED

    def test_update_for_an_unknown_task_is_rejected(
        self, repo: TaskRepository, clock: ManualClock
    ) -> None:
        result = record_update(
            update("00000000-0000-4000-8000-000000000000", "RUNNING"), repo=repo, clock=clock
        )
        assert result.outcome is UpdateOutcome.REJECTED
        assert result.reason is RejectReason.UNKNOWN_TASK
        assert result.task is None

    def test_repeated_sequence_is_a_duplicate_and_a_lower_one_is_stale(
        self, store: Store, clock: ManualClock
    ) -> None:
        repo = store.repo
        task = self.submit(repo, clock)
        assert (
            record_update(update(task.id, "RUNNING", 5), repo=repo, clock=clock).outcome
            is UpdateOutcome.APPLIED
        )
        dup = record_update(update(task.id, "RUNNING", 5), repo=repo, clock=clock)
        stale = record_update(update(task.id, "RUNNING", 4), repo=repo, clock=clock)
        reused = record_update(update(task.id, "SUCCESSFUL", 5, result=1), repo=repo, clock=clock)
        assert dup.outcome is UpdateOutcome.DUPLICATE
        assert stale.outcome is UpdateOutcome.STALE
        assert reused.outcome is UpdateOutcome.REJECTED
        assert reused.reason is RejectReason.SEQUENCE_REUSED
        stored = repo.get(task.id)
        assert stored is not None
        assert (stored.version, stored.last_sequence, stored.status) == (
            2,
            5,
            TaskStatus.RUNNING,
        )
        assert len(store.committed_events()) == 2

    def test_late_running_update_after_success_is_stale(
        self, repo: TaskRepository, clock: ManualClock
    ) -> None:
        task = self.submit(repo, clock)
        record_update(update(task.id, "SUCCESSFUL", 3, result=None), repo=repo, clock=clock)
        late = record_update(update(task.id, "RUNNING", 2), repo=repo, clock=clock)
        assert late.outcome is UpdateOutcome.STALE

    def test_bare_heartbeat_keeps_progress_and_first_start_time(
        self, repo: TaskRepository, clock: ManualClock
    ) -> None:
        task = self.submit(repo, clock)
        clock.advance(1)
        started = clock.now()
        record_update(
            update(task.id, "RUNNING", 1, progress={"percent": 40, "message": "m"}),
            repo=repo,
            clock=clock,
        )
        clock.advance(1)
        beat = record_update(update(task.id, "RUNNING", 2), repo=repo, clock=clock)
        assert beat.outcome is UpdateOutcome.APPLIED
        assert beat.task is not None
        assert beat.task.progress is not None
        assert beat.task.progress.percent == 40
        assert beat.task.started_at == started
        assert beat.task.updated_at == clock.now()
        assert repo.get(task.id) == beat.task

    def test_failed_update_stores_the_error(self, repo: TaskRepository, clock: ManualClock) -> None:
        task = self.submit(repo, clock)
        body = update(task.id, "FAILED", error={"code": "NO_PAPER", "message": "tray empty"})
        result = record_update(body, repo=repo, clock=clock)
        stored = repo.get(task.id)
        assert stored is not None
        assert stored == result.task
        assert stored.error is not None
        assert (stored.error.code, stored.error.message) == ("NO_PAPER", "tray empty")

    def test_version_guard_refuses_a_change_read_at_another_version(
        self, repo: TaskRepository, clock: ManualClock
    ) -> None:
        task = self.submit(repo, clock)
        record_update(update(task.id, "RUNNING"), repo=repo, clock=clock)
        change = Change(status=TaskStatus.FAILED, updated_at=clock.now())
        written = repo.apply(Guard(task_id=task.id, statuses=OPEN_STATUSES, version=1), change)
        assert not written.applied
        assert written.task is not None
        assert written.task.version == 2

    def test_cancel_fails_an_open_task_and_refuses_a_finished_one(
        self, store: Store, clock: ManualClock
    ) -> None:
        repo = store.repo
        task = self.submit(repo, clock)
        cancelled = cancel_task(task.id, owner="alice", repo=repo, clock=clock)
        assert cancelled.status is TaskStatus.FAILED
        assert cancelled.error is not None
        assert cancelled.error.code == "CANCELLED"
        assert repo.get(task.id) == cancelled
        with pytest.raises(TaskAlreadyFinishedError):
            cancel_task(task.id, owner="alice", repo=repo, clock=clock)
        assert [e.DETAIL_TYPE for e in store.committed_events()] == ["TaskCreated", "TaskFailed"]

    # -- lists -------------------------------------------------------------------------------
    def test_list_filters_by_status_and_type(
        self, repo: TaskRepository, clock: ManualClock
    ) -> None:
        a = self.submit(repo, clock, type="a")
        clock.advance(1)
        b = self.submit(repo, clock, type="b")
        clock.advance(1)
        c = self.submit(repo, clock, type="a")
        record_update(update(c.id, "RUNNING"), repo=repo, clock=clock)

        def ids(**filters: Any) -> list[str]:
            return [
                t.id for t in list_tasks(owner="alice", repo=repo, clock=clock, **filters).items
            ]

        assert ids(type="a") == [c.id, a.id]
        assert ids(status=TaskStatus.CREATED) == [b.id, a.id]
        assert ids(status=TaskStatus.CREATED, type="a") == [a.id]
        assert ids(status=TaskStatus.FAILED) == []

    def test_filtered_list_pages_through_everything_once(
        self, repo: TaskRepository, clock: ManualClock
    ) -> None:
        wanted = []
        for n in range(9):
            task = self.submit(repo, clock, type="a" if n % 3 == 0 else "b")
            if task.type == "a":
                wanted.append(task.id)
            clock.advance(1)
        seen: list[str] = []
        cursor = None
        while True:
            page = list_tasks(
                owner="alice", repo=repo, clock=clock, limit=1, type="a", cursor=cursor
            )
            seen += [t.id for t in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == list(reversed(wanted))

    def test_list_is_limited_and_says_when_there_is_no_more(
        self, repo: TaskRepository, clock: ManualClock
    ) -> None:
        for _ in range(3):
            self.submit(repo, clock)
            clock.advance(1)
        full = list_tasks(owner="alice", repo=repo, clock=clock, limit=3)
        assert len(full.items) == 3
        assert full.next_cursor is None
        part = list_tasks(owner="alice", repo=repo, clock=clock, limit=2)
        assert len(part.items) == 2
        assert part.next_cursor is not None

    def test_a_tampered_cursor_is_refused(self, repo: TaskRepository, clock: ManualClock) -> None:
        for _ in range(3):
            self.submit(repo, clock)
            clock.advance(1)
        cursor = list_tasks(owner="alice", repo=repo, clock=clock, limit=1).next_cursor
        assert cursor is not None
        for tampered in (cursor[:-3], cursor + "x", cursor[:5], cursor[::-1]):
            with pytest.raises(InvalidCursorError):
                list_tasks(owner="alice", repo=repo, clock=clock, limit=1, cursor=tampered)

    # -- the sweeper's due query and expiry --------------------------------------------------
    def test_due_finds_open_tasks_past_their_deadline_only(
        self, repo: TaskRepository, clock: ManualClock
    ) -> None:
        short = self.submit(repo, clock, timeout_seconds=10)
        self.submit(repo, clock, timeout_seconds=100)
        done = self.submit(repo, clock, timeout_seconds=10)
        record_update(update(done.id, "SUCCESSFUL"), repo=repo, clock=clock)
        assert repo.due(clock.now(), 10) == []
        clock.advance(10)
        assert [t.id for t in repo.due(clock.now(), 10)] == [short.id]

    def test_due_finds_a_running_task_whose_heartbeat_went_quiet(
        self, repo: TaskRepository, clock: ManualClock
    ) -> None:
        task = self.submit(repo, clock, timeout_seconds=600, heartbeat_seconds=30)
        quiet = self.submit(repo, clock, timeout_seconds=600)
        record_update(update(task.id, "RUNNING", 1), repo=repo, clock=clock)
        record_update(update(quiet.id, "RUNNING", 1), repo=repo, clock=clock)
        clock.advance(20)
        record_update(update(task.id, "RUNNING", 2), repo=repo, clock=clock)
        clock.advance(20)
        assert repo.due(clock.now(), 10) == []  # the heartbeat moved its due time
        clock.advance(10)
        due = repo.due(clock.now(), 10)
        assert [t.id for t in due] == [task.id]
        assert due[0] == repo.get(task.id)

    def test_due_is_limited_and_earliest_first(
        self, repo: TaskRepository, clock: ManualClock
    ) -> None:
        tasks = [self.submit(repo, clock, timeout_seconds=10 + n) for n in range(4)]
        clock.advance(60)
        assert [t.id for t in repo.due(clock.now(), 2)] == [tasks[0].id, tasks[1].id]

    def test_due_merges_deadlines_and_heartbeats_earliest_first(
        self, repo: TaskRepository, clock: ManualClock
    ) -> None:
        late = self.submit(repo, clock, timeout_seconds=100)
        beat_30 = self.submit(repo, clock, timeout_seconds=600, heartbeat_seconds=30)
        early = self.submit(repo, clock, timeout_seconds=50)
        beat_80 = self.submit(repo, clock, timeout_seconds=600, heartbeat_seconds=80)
        for task in (beat_30, beat_80):
            record_update(update(task.id, "RUNNING", 1), repo=repo, clock=clock)
        clock.advance(200)
        expected = [beat_30.id, early.id, beat_80.id, late.id]
        assert [t.id for t in repo.due(clock.now(), 10)] == expected
        assert [t.id for t in repo.due(clock.now(), 3)] == expected[:3]
        assert [t.id for t in repo.due(clock.now(), 1)] == expected[:1]

    def test_expire_overdue_fails_timed_out_and_quiet_tasks(
        self, store: Store, clock: ManualClock
    ) -> None:
        repo = store.repo
        slow = self.submit(repo, clock, timeout_seconds=60)
        quiet = self.submit(repo, clock, timeout_seconds=600, heartbeat_seconds=10)
        record_update(update(quiet.id, "RUNNING", 1), repo=repo, clock=clock)
        clock.advance(61)
        failed = {t.id: t for t in expire_overdue(repo=repo, clock=clock)}
        assert set(failed) == {slow.id, quiet.id}
        codes = {task_id: t.error.code if t.error else None for task_id, t in failed.items()}
        assert codes == {slow.id: "TIMEOUT", quiet.id: "HEARTBEAT_TIMEOUT"}
        assert repo.due(clock.now(), 10) == []
        assert expire_overdue(repo=repo, clock=clock) == []
        assert Counter(e.DETAIL_TYPE for e in store.committed_events())["TaskFailed"] == 2

    def test_expired_task_is_gone_for_reads_and_lists_and_its_id_reusable(
        self, repo: TaskRepository, clock: ManualClock
    ) -> None:
        task = self.submit(repo, clock, key="once")
        record_update(update(task.id, "SUCCESSFUL"), repo=repo, clock=clock)
        clock.advance(DEFAULT_POLICY.retention_seconds + 1)
        with pytest.raises(TaskNotFoundError):
            get_task(task.id, owner="alice", repo=repo, clock=clock)
        assert list_tasks(owner="alice", repo=repo, clock=clock).items == []
        again = self.submit(repo, clock, key="once")
        assert again.id == task.id
        assert again.status is TaskStatus.CREATED
        assert again.version == 1
        assert repo.get(task.id) == again

    def test_a_finished_task_stays_until_its_retention_ends(
        self, repo: TaskRepository, clock: ManualClock
    ) -> None:
        task = self.submit(repo, clock, key="once")
        record_update(update(task.id, "SUCCESSFUL"), repo=repo, clock=clock)
        clock.advance(DEFAULT_POLICY.retention_seconds - 1)
        assert get_task(task.id, owner="alice", repo=repo, clock=clock).status == "SUCCESSFUL"
        replay = self.submit(repo, clock, key="once")
        assert replay.status is TaskStatus.SUCCESSFUL
        assert len(list_tasks(owner="alice", repo=repo, clock=clock).items) == 1

    def test_times_keep_microseconds(self, repo: TaskRepository, clock: ManualClock) -> None:
        clock.advance(0.123456)
        task = self.submit(repo, clock)
        assert repo.get(task.id) == task
        assert task.created_at.microsecond == 123456
        clock.advance(timedelta(microseconds=7).total_seconds())
        result = record_update(update(task.id, "SUCCESSFUL"), repo=repo, clock=clock)
        assert result.task == repo.get(task.id)
