"""SQLite beyond the shared contract: several processes, crashes, schema versions."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, NoReturn, cast

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskmanager.adapters.memory import (
    InMemoryEventBus,
    ManualClock,
    UuidIdFactory,
)
from taskmanager.adapters.sqlite import SCHEMA_VERSION, SQLiteTaskRepository, outbox, rows
from taskmanager.adapters.sqlite.rows import time_text
from taskmanager.domain.errors import StorageError, StorageSchemaError
from taskmanager.domain.events import TaskUpdated
from taskmanager.domain.model import (
    TYPE_MAX_LENGTH,
    TYPE_PATTERN,
    Progress,
    SubmitTask,
    TaskStatus,
    format_time,
)
from taskmanager.domain.ports import ListQuery
from taskmanager.domain.services import (
    Policy,
    dispatch_outbox,
    new_task,
    record_update,
    submit_task,
)
from tests.contract import sqlite_workers

if TYPE_CHECKING:
    from pathlib import Path

SPAWN = multiprocessing.get_context("spawn")
CHILD_TIMEOUT = 60


def _submit(repo: SQLiteTaskRepository, clock: ManualClock) -> str:
    command = SubmitTask(type="t", input=None)
    return submit_task(command, owner="o", repo=repo, clock=clock, ids=UuidIdFactory()).task.id


def test_four_processes_racing_terminal_updates_have_exactly_one_winner(tmp_path: Path) -> None:
    path = str(tmp_path / "tasks.db")
    repo = SQLiteTaskRepository(path)
    task_id = _submit(repo, ManualClock())
    processes, threads = 4, 4
    barrier = SPAWN.Barrier(processes)
    out: multiprocessing.Queue[object] = SPAWN.Queue()
    children = [
        SPAWN.Process(target=sqlite_workers.race, args=(path, task_id, n, threads, barrier, out))
        for n in range(processes)
    ]
    for child in children:
        child.start()
    results: list[tuple[str, str, str | None]] = []
    for _ in children:
        results += cast("list[tuple[str, str, str | None]]", out.get(timeout=CHILD_TIMEOUT))
    for child in children:
        child.join(CHILD_TIMEOUT)
        assert child.exitcode == 0
    assert len(results) == processes * threads
    outcomes = Counter(outcome for _, outcome, _ in results)
    assert outcomes["applied"] == 1
    final = repo.get(task_id)
    assert final is not None
    assert final.version == 2
    for status, outcome, reason in results:
        if outcome != "applied":
            expected = "duplicate" if status == final.status else "rejected"
            assert outcome == expected, (status, outcome, reason)
    events = repo.undelivered
    assert [e.event.event_id for e in events] == [f"{task_id}:1", f"{task_id}:2"]
    assert events[-1].event.status is final.status
    repo.close()


def test_killed_after_commit_before_dispatch_loses_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "tasks.db")
    SQLiteTaskRepository(path).close()
    out: multiprocessing.Queue[object] = SPAWN.Queue()
    child = SPAWN.Process(target=sqlite_workers.commit_then_die, args=(path, 4, out))
    child.start()
    messages: dict[str, list[str]] = {}
    while "publishing" not in messages:
        kind, ids = cast("tuple[str, list[str]]", out.get(timeout=CHILD_TIMEOUT))
        messages[kind] = ids
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)
    child.join(CHILD_TIMEOUT)
    assert child.exitcode == -signal.SIGKILL

    committed, delivered = messages["committed"], messages["delivered"]
    assert len(committed) == 12
    # The child was killed while publishing these, before it could mark them delivered.
    assert messages["publishing"] == committed[3:8]

    repo = SQLiteTaskRepository(path)
    bus = InMemoryEventBus()
    while dispatch_outbox(repo, bus):
        pass
    redelivered = [e.event_id for e in bus.published]
    assert redelivered == [i for i in committed if i not in delivered]
    assert repo.pending(100) == []
    for event_id in committed[2::3]:
        task = repo.get(event_id.split(":")[0])
        assert task is not None
        assert task.status is TaskStatus.SUCCESSFUL
    repo.close()


def test_a_new_file_gets_the_current_schema_version(tmp_path: Path) -> None:
    with SQLiteTaskRepository(tmp_path / "tasks.db") as repo:
        assert repo.schema_version == SCHEMA_VERSION
    db = sqlite3.connect(tmp_path / "tasks.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_an_older_file_is_migrated_and_keeps_its_tasks(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    with SQLiteTaskRepository(path) as repo:
        task_id = _submit(repo, ManualClock())
    # Make the file look like version 1: no cursor key table.
    db = sqlite3.connect(path)
    db.execute("DROP TABLE meta")
    db.execute("UPDATE schema_version SET version = 1")
    db.commit()
    db.close()
    with SQLiteTaskRepository(path) as repo:
        assert repo.schema_version == SCHEMA_VERSION
        assert repo.get(task_id) is not None
        for _ in range(2):
            _submit(repo, ManualClock())
        page = repo.list_page(ListQuery(owner="o", limit=1), ManualClock().now())
        assert page.next_cursor is not None
        query = ListQuery(owner="o", limit=5, cursor=page.next_cursor)
        assert len(repo.list_page(query, ManualClock().now()).items) == 2


def test_a_newer_schema_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    SQLiteTaskRepository(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    db.commit()
    db.close()
    with pytest.raises(StorageSchemaError) as raised:
        SQLiteTaskRepository(path)
    assert f"schema version {SCHEMA_VERSION + 1}" in raised.value.message
    assert raised.value.details["supported"] == SCHEMA_VERSION


def test_sqlite_older_than_3_35_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 34, 1))
    with pytest.raises(StorageError, match="too old"):
        SQLiteTaskRepository(tmp_path / "tasks.db")


def test_a_file_that_is_not_a_database_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError):
        SQLiteTaskRepository(path)


def test_a_closed_repository_refuses_work(tmp_path: Path) -> None:
    repo = SQLiteTaskRepository(tmp_path / "tasks.db")
    repo.close()
    with pytest.raises(StorageError, match="closed"):
        repo.get("x")


def test_cursor_of_another_owner_or_file_is_refused(tmp_path: Path) -> None:
    from taskmanager.domain.errors import InvalidCursorError

    clock = ManualClock()
    with (
        SQLiteTaskRepository(tmp_path / "a.db") as a,
        SQLiteTaskRepository(tmp_path / "b.db") as b,
    ):
        for repo in (a, b):
            for _ in range(2):
                _submit(repo, clock)
        cursor = a.list_page(ListQuery(owner="o", limit=1), clock.now()).next_cursor
        assert cursor is not None
        with pytest.raises(InvalidCursorError):
            a.list_page(ListQuery(owner="mallory", limit=1, cursor=cursor), clock.now())
        with pytest.raises(InvalidCursorError):
            b.list_page(ListQuery(owner="o", limit=1, cursor=cursor), clock.now())


def test_dispatch_across_two_handles_on_one_file(tmp_path: Path) -> None:
    clock = ManualClock()
    with (
        SQLiteTaskRepository(tmp_path / "a.db") as writer,
        SQLiteTaskRepository(tmp_path / "a.db") as dispatcher,
    ):
        task_id = _submit(writer, clock)
        bus = InMemoryEventBus()
        assert dispatch_outbox(dispatcher, bus) == 1
        assert [e.event_id for e in bus.published] == [f"{task_id}:1"]
        assert writer.pending(10) == []


@given(
    st.datetimes(
        min_value=datetime(1000, 1, 2),  # still year 1000 or later once in UTC
        max_value=datetime(9998, 12, 31),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
    )
)
@settings(max_examples=200)
def test_row_timestamps_are_exactly_format_time(value: datetime) -> None:
    assert time_text(value) == format_time(value)


def test_row_timestamps_of_one_second_share_its_text_but_not_their_microseconds() -> None:
    second = datetime(2030, 5, 1, 12, 0, 7, tzinfo=UTC)
    micros = (0, 5, 999, 1_000, 123_456, 999_999)
    stamps = [time_text(second.replace(microsecond=m)) for m in micros]
    assert stamps == [format_time(second.replace(microsecond=m)) for m in micros]
    assert len(set(stamps)) == len(micros)


def test_the_formatted_seconds_kept_for_row_timestamps_stay_bounded() -> None:
    start = datetime(2031, 1, 1, tzinfo=UTC)
    for n in range(rows._SECONDS_MAX + 10):
        value = start + timedelta(seconds=n, microseconds=n)
        assert time_text(value) == format_time(value)
    assert 0 < len(rows._SECONDS) <= rows._SECONDS_MAX


def test_events_handed_out_by_their_writer_equal_the_rows_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer hands out the event objects it committed; another handle parses the rows.
    Both see the same events, and the writer forgets what is delivered (and, past a bound,
    everything)."""
    from taskmanager.domain.events import TaskUpdated
    from taskmanager.domain.services import record_update

    monkeypatch.setattr(outbox, "_RECENT_EVENTS_MAX", 3)
    clock = ManualClock()
    with (
        SQLiteTaskRepository(tmp_path / "a.db") as writer,
        SQLiteTaskRepository(tmp_path / "a.db") as reader,
    ):
        task_id = _submit(writer, clock)
        for sequence, status in enumerate(("RUNNING", "RUNNING", "SUCCESSFUL"), start=1):
            update = TaskUpdated.model_validate(
                {"task_id": task_id, "status": status, "sequence": sequence, "result": None}
            )
            assert record_update(update, repo=writer, clock=clock).outcome == "applied"
        remembered = writer.pending(10)
        parsed = reader.pending(10)
        assert [entry.position for entry in remembered] == [entry.position for entry in parsed]
        assert [entry.event for entry in remembered] == [entry.event for entry in parsed]
        assert [entry.event.model_dump(mode="json") for entry in remembered] == [
            entry.event.model_dump(mode="json") for entry in parsed
        ]
        assert [entry.event.event_id for entry in parsed] == [
            f"{task_id}:{version}" for version in range(1, 5)
        ]
        # Past the bound the writer forgot the oldest events; it still delivers them all.
        assert len(writer._outbox.recent_events) <= 3
        writer.mark_delivered([entry.position for entry in remembered[:2]])
        assert [e.event.event_id for e in reader.pending(10)] == [
            f"{task_id}:3",
            f"{task_id}:4",
        ]
        writer.mark_delivered([entry.position for entry in remembered[2:]])
        assert writer._outbox.recent_events == {}
        assert reader.pending(10) == []


def test_a_version_2_file_is_migrated_to_the_split_due_indexes(tmp_path: Path) -> None:
    from taskmanager.domain.events import TaskUpdated
    from taskmanager.domain.services import record_update

    path = tmp_path / "tasks.db"
    clock = ManualClock()
    with SQLiteTaskRepository(path) as repo:
        command = SubmitTask(type="t", timeout_seconds=600, heartbeat_seconds=30)
        beating = submit_task(command, owner="o", repo=repo, clock=clock, ids=UuidIdFactory())
        running = TaskUpdated(task_id=beating.task.id, status=TaskStatus.RUNNING)
        record_update(running, repo=repo, clock=clock)
        waiting = _submit(repo, clock)  # CREATED, default timeout (3600 s)
    # Version 2 had one due_us column (the earlier of deadline and heartbeat), one index.
    db = sqlite3.connect(path)
    db.execute("UPDATE tasks SET due_us = heartbeat_due_us WHERE heartbeat_due_us IS NOT NULL")
    db.execute("DROP INDEX tasks_by_heartbeat")
    db.execute("ALTER TABLE tasks DROP COLUMN heartbeat_due_us")
    db.execute("UPDATE schema_version SET version = 2")
    db.commit()
    db.close()
    with SQLiteTaskRepository(path) as repo:
        assert repo.schema_version == SCHEMA_VERSION
        assert repo.due(clock.now() + timedelta(seconds=29), 10) == []
        due = repo.due(clock.now() + timedelta(seconds=30), 10)
        assert [t.id for t in due] == [beating.task.id]
        later = repo.due(clock.now() + timedelta(hours=1), 10)
        assert [t.id for t in later] == [beating.task.id, waiting]
    db = sqlite3.connect(path)
    indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    db.close()
    assert {"tasks_by_due", "tasks_by_heartbeat"} <= indexes


def test_a_batch_commits_its_writes_together_and_a_write_refused_at_once_leaves_it_whole(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "tasks.db")
    repo, other = SQLiteTaskRepository(path), SQLiteTaskRepository(path)
    clock = ManualClock()
    repo.begin_batch()
    first, second = _submit(repo, clock), _submit(repo, clock)
    assert other.get(first) is None  # nothing is visible (or durable) before the commit

    def refused(db: sqlite3.Connection) -> NoReturn:
        db.execute("INSERT INTO outbox (event_id) VALUES ('x')")  # NOT NULL: changes nothing
        raise AssertionError("unreachable")

    with pytest.raises(StorageError):
        repo._write(refused)
    repo.commit_batch()
    assert other.get(first) is not None
    assert other.get(second) is not None
    assert [e.event.id for e in other.pending(10)] == [first, second]
    assert repo.pending(10) == other.pending(10)  # remembered by the writer once committed
    third = _submit(repo, clock)  # after the batch, writes commit one by one again
    assert other.get(third) is not None


def test_a_write_that_fails_part_way_rolls_back_its_whole_batch(tmp_path: Path) -> None:
    path = str(tmp_path / "tasks.db")
    repo, other = SQLiteTaskRepository(path), SQLiteTaskRepository(path)
    clock = ManualClock()
    repo.begin_batch()
    first = _submit(repo, clock)

    def fails_half_way(db: sqlite3.Connection) -> NoReturn:
        db.execute("INSERT INTO outbox (event_id, detail_type, detail) VALUES ('x', 'y', '{}')")
        raise sqlite3.OperationalError("disk I/O error, after a first statement")

    with pytest.raises(StorageError):
        repo._write(fails_half_way)
    with pytest.raises(StorageError):  # the batch is gone: later writes in it are refused
        _submit(repo, clock)
    with pytest.raises(StorageError, match="rolled back"):
        repo.commit_batch()
    assert other.get(first) is None  # nothing of the batch was kept, half a write least of all
    assert other.pending(10) == []
    assert repo.pending(10) == []
    second = _submit(repo, clock)  # after the batch, writes commit one by one again
    assert other.get(second) is not None
    repo.begin_batch()  # and a new batch starts clean
    third = _submit(repo, clock)
    repo.commit_batch()
    assert [e.event.id for e in other.pending(10)] == [second, third]


def test_a_batch_returns_what_it_committed_and_may_delete_delivered_rows(tmp_path: Path) -> None:
    path = str(tmp_path / "tasks.db")
    repo, other = SQLiteTaskRepository(path), SQLiteTaskRepository(path)
    clock = ManualClock()
    repo.begin_batch()
    first, second = _submit(repo, clock), _submit(repo, clock)
    committed = repo.commit_batch()
    assert [entry.event.id for entry in committed] == [first, second]
    assert [entry.position for entry in committed] == [1, 2]
    repo.begin_batch()
    repo.mark_delivered([1, 2])  # joins the batch's transaction ...
    assert len(other.pending(10)) == 2
    third = _submit(repo, clock)
    assert [entry.position for entry in repo.commit_batch()] == [3]  # the next position
    assert [entry.event.id for entry in other.pending(10)] == [third]  # ... committed with it


def test_a_delete_that_ends_the_batch_transaction_fails_the_whole_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "tasks.db")
    repo, other = SQLiteTaskRepository(path), SQLiteTaskRepository(path)
    clock = ManualClock()
    repo.begin_batch()
    first = _submit(repo, clock)
    repo._db().execute("ROLLBACK")  # what SQLite does on some I/O errors ...
    for statement in ("_DELETE_EVENTS", "_DELETE_EVENT_RANGE"):
        monkeypatch.setattr(outbox, statement, "DELETE FROM no_such_table")
    with pytest.raises(StorageError):  # ... as the statement fails
        repo.mark_delivered([1])
    with pytest.raises(StorageError, match="rolled back"):
        repo.commit_batch()
    assert other.get(first) is None


def test_without_autocheckpoint_checkpoint_copies_the_log_into_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    repo = SQLiteTaskRepository(str(path), autocheckpoint=False)
    assert repo._db().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    clock = ManualClock()
    wal = tmp_path / "tasks.db-wal"
    before = path.stat().st_size
    for _ in range(20):
        _submit(repo, clock)
    assert path.stat().st_size == before  # every write is still only in the log
    assert wal.stat().st_size > 0
    assert repo.checkpoint() > 0  # pages in the log, now all copied
    assert path.stat().st_size > before  # now in the database file
    assert len(SQLiteTaskRepository(str(path)).pending(100)) == 20


def test_create_stores_every_column_of_a_task_that_is_not_new(tmp_path: Path) -> None:
    """create() of a task as submitted binds only the columns such a task can have; any
    other task goes through the full insert, every column kept."""
    repo = SQLiteTaskRepository(str(tmp_path / "tasks.db"))
    clock = ManualClock()
    command = SubmitTask(type="t", input={"n": 1}, heartbeat_seconds=30)
    fresh = new_task(command, task_id="a" * 8, owner="o", now=clock.now())
    running = msgspec.structs.replace(
        fresh,
        id="b" * 8,
        status=TaskStatus.RUNNING,
        version=3,
        started_at=clock.now(),
        progress=Progress(percent=40, message="half way"),
        last_sequence=2,
    )
    for task in (fresh, running):
        assert repo.create(task, clock.now()).applied
        assert repo.get(task.id) == task
    later = clock.now() + timedelta(seconds=31)  # past the heartbeat, before the deadline
    assert [t.id for t in repo.due(later, 10)] == [running.id]


_ANY_TEXT = st.text(max_size=40)
#: A task type is refused at submit unless it matches the pattern, and an event is never
#: built for any other.
_TASK_TYPES = st.from_regex(TYPE_PATTERN, fullmatch=True).filter(
    lambda text: len(text) <= TYPE_MAX_LENGTH
)


@given(
    task_id=st.text(min_size=1, max_size=40),
    owner=_ANY_TEXT,
    type_=_TASK_TYPES,
    key=st.none() | _ANY_TEXT,
    fingerprint=st.none() | _ANY_TEXT,
    message=st.none() | _ANY_TEXT,
)
@settings(max_examples=60, deadline=None)
def test_any_text_in_a_row_reads_back_unchanged(
    tmp_path_factory: pytest.TempPathFactory,
    *,
    task_id: str,
    owner: str,
    type_: str,
    key: str | None,
    fingerprint: str | None,
    message: str | None,
) -> None:
    """A row's small columns are read as one JSON array built by SQLite: quotes,
    backslashes, control characters, NUL and characters beyond the BMP come back as
    written, by ``get``, ``list_page`` and ``due``."""
    repo = SQLiteTaskRepository(str(tmp_path_factory.mktemp("row") / "tasks.db"))
    clock = ManualClock()
    command = SubmitTask(type="t", input={"text": message}, heartbeat_seconds=30)
    task = msgspec.structs.replace(
        new_task(command, task_id=task_id, owner=owner, now=clock.now()),
        type=type_,
        status=TaskStatus.RUNNING,
        version=2,
        started_at=clock.now(),
        progress=Progress(percent=10, message=message),
        idempotency_key=key,
        request_fingerprint=fingerprint,
    )
    assert repo.create(task, clock.now()).applied
    assert repo.get(task_id) == task
    assert repo.list_page(ListQuery(owner=owner, limit=5), clock.now()).items == [task]
    assert repo.due(clock.now() + timedelta(seconds=31), 5) == [task]
    repo.close()


def test_row_text_with_every_escape_reads_back_unchanged(tmp_path: Path) -> None:
    text = 'q"b\\s/n\nt\tz\x00c\x1f\x7fé\u2028😀'
    repo = SQLiteTaskRepository(str(tmp_path / "tasks.db"))
    clock = ManualClock()
    command = SubmitTask(type="t", input=text)
    task = msgspec.structs.replace(
        new_task(command, task_id=text, owner=text, now=clock.now()),
        idempotency_key=text,
        request_fingerprint=text,
    )
    assert repo.create(task, clock.now()).applied
    stored = repo.get(text)
    assert stored == task
    assert stored is not None
    assert (stored.id, stored.owner, stored.input, stored.idempotency_key) == (text,) * 4


def test_under_a_steady_load_purging_keeps_the_rows_and_the_file_bounded(tmp_path: Path) -> None:
    """Tasks finished and expired a second later, round after round: once the purge runs,
    the rows stop at about one retention's worth and the file stops growing (SQLite
    reuses the pages the deleted rows freed)."""
    policy = Policy(retention_seconds=1)
    clock = ManualClock()
    path = tmp_path / "tasks.db"
    repo = SQLiteTaskRepository(path)
    db = sqlite3.connect(path)
    bus = InMemoryEventBus(record=False)
    command = SubmitTask(type="t", input={"text": "x" * 1000})
    rows_seen, pages_seen = [], []
    for _ in range(60):
        for _ in range(25):
            task = submit_task(command, owner="o", repo=repo, clock=clock, ids=UuidIdFactory())
            finish = TaskUpdated(task_id=task.task.id, status="SUCCESSFUL", result={"n": 1})
            record_update(finish, repo=repo, clock=clock, policy=policy)
        dispatch_outbox(repo, bus)
        clock.advance(0.5)
        while repo.purge_expired(clock.now(), 10) == 10:  # bounded batches, until done
            pass
        rows_seen.append(db.execute("SELECT count(*) FROM tasks").fetchone()[0])
        pages_seen.append(db.execute("PRAGMA page_count").fetchone()[0])
    db.close()
    repo.close()
    # 1,500 tasks went through; each round, the previous round's 25 expired (finished a
    # retention ago) and were deleted: only the last round's are kept.
    assert rows_seen == [25] * 60
    # The file grew while the first rounds filled it, then not at all.
    assert pages_seen[-1] == pages_seen[10]
