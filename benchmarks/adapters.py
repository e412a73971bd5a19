"""Storage adapters' throughput, beside bare sqlite3 measured in the same run.

One lifecycle = submit (validated command, use case, guarded INSERT + outbox row) ->
RUNNING -> RUNNING with progress -> SUCCESSFUL (each one guarded UPDATE + outbox row in one
transaction) -> dispatch (read the 4 pending events, publish them to the in-process bus,
mark them delivered).

- sqlite: SQLiteTaskRepository on a file on disk, WAL, synchronous=NORMAL, as
  `taskmanager serve` runs it: the write-ahead log is copied into the file by a thread of
  its own (a checkpoint every half second), so no write waits for one;
- memory: InMemoryTaskRepository, the same use cases;
- baseline: bare sqlite3, same file settings and the same checkpointing thread, the same rows
  and transactions written with hand-written SQL (no use cases, no guards evaluated in
  Python, no event models).

Then one lifecycle on DynamoDB (moto) and EventBridge (moto) with every AWS request counted
through botocore's event hooks.

Run: `python benchmarks/adapters.py`. Prints a table, `sqlite lifecycles/s: N` and ratios.
"""

from __future__ import annotations

import gc
import json
import os
import sqlite3
import statistics
import tempfile
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Final

from taskmanager.adapters.memory import (
    InMemoryEventBus,
    InMemoryTaskRepository,
    SystemClock,
    UuidIdFactory,
)
from taskmanager.adapters.sqlite import SQLiteTaskRepository
from taskmanager.domain.events import TaskUpdated
from taskmanager.domain.model import SubmitTask
from taskmanager.domain.services import dispatch_outbox, record_update, submit_task
from taskmanager.entrypoints.local.threads import Loop

if TYPE_CHECKING:
    from collections.abc import Callable

    from taskmanager.domain.ports import Outbox, TaskRepository

BATCH: Final = 300  # lifecycles per timed run
ROUNDS: Final = 9
TARGET: Final = 1_000

_BODY = b'{"type": "report.render", "input": {"rows": 10}}'


def lifecycles(repo: TaskRepository, outbox: Outbox, count: int) -> None:
    clock, ids, bus = SystemClock(), UuidIdFactory(), InMemoryEventBus()
    for _ in range(count):
        command = SubmitTask.model_validate_json(_BODY)
        task_id = submit_task(command, owner="bench", repo=repo, clock=clock, ids=ids).task.id
        for body in (
            f'{{"task_id": "{task_id}", "status": "RUNNING", "sequence": 1}}',
            f'{{"task_id": "{task_id}", "status": "RUNNING", "sequence": 2, '
            f'"progress": {{"percent": 50}}}}',
            f'{{"task_id": "{task_id}", "status": "SUCCESSFUL", "sequence": 3, '
            f'"result": {{"ok": true}}}}',
        ):
            record_update(TaskUpdated.model_validate_json(body), repo=repo, clock=clock)
        dispatch_outbox(outbox, bus, limit=10)
        bus.published.clear()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
  id TEXT PRIMARY KEY, owner TEXT, type TEXT, status TEXT, input TEXT, version INTEGER,
  created_at TEXT, updated_at TEXT, progress TEXT, result TEXT, last_sequence INTEGER,
  due_us INTEGER);
CREATE INDEX IF NOT EXISTS tasks_by_owner ON tasks (owner, created_at, id);
CREATE INDEX IF NOT EXISTS tasks_by_due ON tasks (due_us) WHERE due_us IS NOT NULL;
CREATE TABLE IF NOT EXISTS outbox (position INTEGER PRIMARY KEY AUTOINCREMENT,
  event_id TEXT, detail_type TEXT, detail TEXT);
"""


def bare_sqlite(db: sqlite3.Connection, count: int) -> None:
    """The same rows and transactions with hand-written SQL: the floor of what SQLite costs."""
    ids = UuidIdFactory()
    now = "2026-01-01T00:00:00.000000Z"
    detail = json.dumps({"id": "x", "status": "RUNNING", "version": 1, "input": {"rows": 10}})

    def tx(*statements: tuple[str, tuple[Any, ...]]) -> list[Any]:
        db.execute("BEGIN IMMEDIATE")
        rows = [db.execute(sql, params).fetchall() for sql, params in statements]
        db.execute("COMMIT")
        return rows

    outbox = ("INSERT INTO outbox (event_id, detail_type, detail) VALUES (?, ?, ?)",)
    for _ in range(count):
        task_id = ids.new_id()
        tx(
            (
                "INSERT INTO tasks VALUES (?, 'bench', 'report.render', 'CREATED', ?, 1, ?, ?, "
                "NULL, NULL, NULL, 1) RETURNING id",
                (task_id, '{"rows":10}', now, now),
            ),
            (outbox[0], (f"{task_id}:1", "TaskCreated", detail)),
        )
        for version, status, progress, result in (
            (2, "RUNNING", None, None),
            (3, "RUNNING", '{"percent":50}', None),
            (4, "SUCCESSFUL", None, '{"ok":true}'),
        ):
            tx(
                (
                    "UPDATE tasks SET status = ?, version = version + 1, updated_at = ?, "
                    "progress = coalesce(?, progress), result = ?, last_sequence = ? "
                    "WHERE id = ? AND status IN ('CREATED', 'RUNNING') RETURNING *",
                    (status, now, progress, result, version - 1, task_id),
                ),
                (outbox[0], (f"{task_id}:{version}", "TaskRunning", detail)),
            )
        pending = db.execute(
            "SELECT position, detail_type, detail FROM outbox ORDER BY position LIMIT 10"
        ).fetchall()
        for _, _, text in pending:
            json.loads(text)
        db.execute("BEGIN IMMEDIATE")
        db.executemany("DELETE FROM outbox WHERE position = ?", [(p,) for p, _, _ in pending])
        db.execute("COMMIT")


def _rates(
    batches: dict[str, Callable[[], None]],
) -> tuple[dict[str, float], dict[str, float]]:
    """Median lifecycles per wall-clock second and per CPU second of this process, of each
    batch over ROUNDS interleaved runs (A B C A B C ...), after a warm-up. On a shared
    machine the CPU-second figure shows what the code costs when it has a core to itself."""
    for run in batches.values():
        run()
    wall: dict[str, list[float]] = {name: [] for name in batches}
    cpu: dict[str, list[float]] = {name: [] for name in batches}
    for _ in range(ROUNDS):
        for name, run in batches.items():
            gc.collect()
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            wall[name].append(BATCH / (time.perf_counter() - start))
            cpu[name].append(BATCH / max(time.process_time() - start_cpu, 1e-9))
    return (
        {name: statistics.median(values) for name, values in wall.items()},
        {name: statistics.median(values) for name, values in cpu.items()},
    )


def aws_call_counts() -> tuple[Counter[str], Counter[str]]:
    """AWS requests of one lifecycle on DynamoDB (moto), and of publishing its 4 events."""
    import boto3
    from moto import mock_aws

    from taskmanager.adapters.dynamodb import DynamoDBTaskRepository, create_table
    from taskmanager.adapters.eventbridge import EventBridgePublisher
    from taskmanager.domain.events import events_for_change

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        events = boto3.client("events", region_name="us-east-1")
        create_table(dynamodb, "bench")
        table_calls: Counter[str] = Counter()
        bus_calls: Counter[str] = Counter()
        dynamodb.meta.events.register(
            "before-call.dynamodb", lambda model, **_: table_calls.update([model.name])
        )
        events.meta.events.register(
            "before-call.events", lambda model, **_: bus_calls.update([model.name])
        )
        repo = DynamoDBTaskRepository(dynamodb, "bench")
        clock = SystemClock()
        command = SubmitTask.model_validate_json(_BODY)
        created = submit_task(command, owner="b", repo=repo, clock=clock, ids=UuidIdFactory())
        published = events_for_change(None, created.task)
        previous = created.task
        for body in (
            {"task_id": previous.id, "status": "RUNNING", "sequence": 1},
            {
                "task_id": previous.id,
                "status": "RUNNING",
                "sequence": 2,
                "progress": {"percent": 50},
            },
            {"task_id": previous.id, "status": "SUCCESSFUL", "sequence": 3, "result": {"ok": True}},
        ):
            result = record_update(TaskUpdated.model_validate(body), repo=repo, clock=clock)
            assert result.task is not None
            published += events_for_change(previous, result.task)
            previous = result.task
        EventBridgePublisher(events, "default", "taskmanager").publish(published)
    return table_calls, bus_calls


def main() -> None:
    load = f"{os.getloadavg()[0]:.2f}"
    with tempfile.TemporaryDirectory() as tmp:
        repo = SQLiteTaskRepository(os.path.join(tmp, "adapter.db"), autocheckpoint=False)
        bare = sqlite3.connect(os.path.join(tmp, "bare.db"), isolation_level=None)
        bare.execute("PRAGMA journal_mode = WAL")
        bare.execute("PRAGMA synchronous = NORMAL")
        bare.execute("PRAGMA wal_autocheckpoint = 0")
        bare.executescript(_SCHEMA)
        # Checkpoints on a thread of their own, as the local server's checkpointer loop does.
        bare_log = sqlite3.connect(
            os.path.join(tmp, "bare.db"), isolation_level=None, check_same_thread=False
        )
        checkpointers = [
            Loop("checkpointer", repo.checkpoint, interval=0.5),
            Loop(
                "bare-checkpointer",
                lambda: bare_log.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone(),
                interval=0.5,
            ),
        ]
        for checkpointer in checkpointers:
            checkpointer.start()
        rates, cpu = _rates(
            {
                "baseline": lambda: bare_sqlite(bare, BATCH),
                "sqlite": lambda: lifecycles(repo, repo, BATCH),
                "memory": lambda: lifecycles(m := InMemoryTaskRepository(), m, BATCH),
            }
        )
        for checkpointer in checkpointers:
            checkpointer.halt(timeout=5)
        repo.close()
        bare_log.close()
        bare.close()
    table_calls, bus_calls = aws_call_counts()
    baseline, sqlite_rate, memory = rates["baseline"], rates["sqlite"], rates["memory"]
    print(f"load average before: {load}; after: {os.getloadavg()[0]:.2f} (2 cores)")
    title = "lifecycles (submit, 3 updates, dispatch)"
    print(f"{title:<56}{'per s':>10}{'per CPU s':>12}")
    for label, name in (
        ("bare sqlite3, same rows and transactions (baseline)", "baseline"),
        ("SQLiteTaskRepository: file, WAL, outbox in each tx", "sqlite"),
        ("InMemoryTaskRepository", "memory"),
    ):
        print(f"{label:<56}{rates[name]:>10,.0f}{cpu[name]:>12,.0f}")
    print()
    print(f"{'AWS requests per lifecycle (moto)':<56}{'count':>22}")
    for name, count in sorted(table_calls.items()):
        print(f"{'  DynamoDB ' + name:<56}{count:>22}")
    for name, count in sorted(bus_calls.items()):
        print(f"{'  EventBridge ' + name + ' (its 4 events)':<56}{count:>22}")
    print()
    print(f"sqlite lifecycles/s: {sqlite_rate:.0f} (target >= {TARGET:,})")
    print(f"sqlite lifecycles per CPU second: {cpu['sqlite']:.0f}")
    print(f"ratio sqlite/bare-sqlite3: {sqlite_rate / baseline:.2f}")
    print(f"ratio memory/sqlite: {memory / sqlite_rate:.2f}")


if __name__ == "__main__":
    main()
