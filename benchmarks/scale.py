"""The parts of the scale analysis (docs/scale.md) that one machine can measure.

1. The sweeper's work grows with the tasks that are due, not with the tasks that are open:
   one sweep (``expire_overdue``, which finds the due tasks and fails each with one guarded
   write) over 100 due tasks among 1,000 open tasks, then among 1,000,000 (100,000 in short
   mode), interleaved, on SQLite (a file, WAL) and on the in-memory store; on DynamoDB (moto)
   among 20 and 2,000 (10 and 100 in short mode), where the figure is the requests and items read.
   The open tasks are a submitted task copied (SQL ``INSERT ... SELECT`` on SQLite,
   ``Task._replace`` on the in-memory store): loading a million through the use case would
   take a quarter of an hour and measure the submit path, not the sweep.
2. The stream function's events per ``PutEvents`` at full batches: 100 submits, then one
   stream batch of 100 records (the module's default ``batch_size``) through the real
   stream handler, its requests recorded (moto).
3. Listing costs the same at any depth: a page of 100 at the start of an owner's 10,000
   tasks (1,000 in short mode) and at the end, following the cursors; on SQLite and in
   memory timed, on DynamoDB (the sweep's largest table) the requests per page counted.

Run: ``python benchmarks/scale.py [--short]``. Prints ``ratio sweep 1M open/1k open <store>:
X`` (target <= 1.5), ``ratio list page <N>/page 1 <store>: X`` (target <= 1.5) and
``stream events per PutEvents at full batches: X`` (10 is the most PutEvents takes).
"""

from __future__ import annotations

import argparse
import gc
import logging
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import boto3
import msgspec

import pricing
from taskmanager.adapters.dynamodb import DynamoDBTaskRepository, create_table
from taskmanager.adapters.memory import InMemoryTaskRepository, ManualClock, UuidIdFactory
from taskmanager.adapters.sqlite import SQLiteTaskRepository
from taskmanager.domain.model import SubmitTask
from taskmanager.domain.ports import ListQuery
from taskmanager.domain.services import expire_overdue, submit_task

ROOT: Final = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.metering import Meter, MeteredDeployment  # noqa: E402
from tests.support import running_moto_server  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable

    from taskmanager.domain.ports import TaskRepository

OWNER: Final = "bench"
DUE: Final = 100
SMALL_OPEN: Final = 1_000
TARGET: Final = 1.5
#: Far from due: the longest timeout a task may have (7 days).
LONG: Final = SubmitTask(type="scale.open", timeout_seconds=604_800)
SHORT: Final = SubmitTask(type="scale.due", timeout_seconds=1)
ids = UuidIdFactory()


def submit(
    repo: TaskRepository, clock: ManualClock, command: SubmitTask, owner: str = OWNER
) -> Any:
    return submit_task(command, owner=owner, repo=repo, clock=clock, ids=ids).task


# --- 1. the sweep -----------------------------------------------------------------------------
def fill_sqlite(path: Path, repo: SQLiteTaskRepository, clock: ManualClock, count: int) -> None:
    """``count`` open tasks, not due for a week: one submitted, the rest copies of its row."""
    template = submit(repo, clock, LONG)
    with sqlite3.connect(path) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(tasks)")]
        copied = ", ".join("printf('open-%09d', n)" if c == "id" else c for c in columns)
        db.execute(
            f"WITH RECURSIVE n(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM n WHERE n < ?) "
            f"INSERT INTO tasks ({', '.join(columns)}) "
            f"SELECT {copied} FROM tasks JOIN n WHERE tasks.id = ?",
            (count - 1, template.id),
        )
        db.execute("DELETE FROM outbox")


def fill_memory(repo: InMemoryTaskRepository, clock: ManualClock, count: int) -> None:
    template = submit(repo, clock, LONG)
    now = clock.now()
    for n in range(1, count):
        repo.create(msgspec.structs.replace(template, id=f"open-{n:09d}"), now)
        if n % 10_000 == 0:  # nothing dispatches here: drop the TaskCreated events
            repo.mark_delivered([e.position for e in repo.pending(10_000)])
    repo.mark_delivered([e.position for e in repo.pending(count)])


def one_sweep(repo: TaskRepository, clock: ManualClock) -> float:
    """Seconds of one sweep that fails :data:`DUE` tasks."""
    for _ in range(DUE):
        submit(repo, clock, SHORT)
    clock.advance(2)
    gc.collect()
    start = time.perf_counter()
    expired = expire_overdue(repo=repo, clock=clock, limit=500)
    took = time.perf_counter() - start
    assert len(expired) == DUE, len(expired)
    return took


def sweeps(
    label: str, make: Callable[[int], tuple[TaskRepository, ManualClock]], big: int, rounds: int
) -> float:
    small_repo, small_clock = make(SMALL_OPEN)
    big_repo, big_clock = make(big)
    small: list[float] = []
    large: list[float] = []
    for n in range(rounds):  # interleaved, each round in the other order
        pair = [(small, small_repo, small_clock), (large, big_repo, big_clock)]
        for samples, repo, clock in pair if n % 2 == 0 else reversed(pair):
            samples.append(one_sweep(repo, clock))
    ratio = statistics.median(large) / statistics.median(small)
    print(
        f"  {label}: {DUE} due among {SMALL_OPEN:,} open {statistics.median(small) * 1000:.1f} ms,"
        f" among {big:,} open {statistics.median(large) * 1000:.1f} ms"
    )
    return ratio


def moto_sweep(
    meter: Meter, client: Any, table: str, opens: tuple[int, ...]
) -> tuple[TaskRepository, ManualClock]:
    """On DynamoDB: the sweep's requests and the items they read, by open tasks. Returns the
    largest table's repository (its tasks are listed next)."""
    for count in opens:
        name = f"{table}-{count}"
        create_table(client, name)
        repo = DynamoDBTaskRepository(client, name)
        clock = ManualClock()
        for _ in range(count):
            submit(repo, clock, LONG)
        for _ in range(DUE // 10):
            submit(repo, clock, SHORT)
        clock.advance(2)
        meter.reset()
        expired = expire_overdue(repo=repo, clock=clock, limit=500)
        assert len(expired) == DUE // 10
        reads = [r for r in meter.requests if r.operation in {"Query", "BatchGetItem"}]
        items = sum(
            len(r.response.get("Items", ()))
            + sum(len(v) for v in r.response.get("Responses", {}).values())
            for r in reads
        )
        print(
            f"  dynamodb (moto): {DUE // 10} due among {count:,} open: {meter.counts()}, "
            f"{items} items read"
        )
    return repo, clock


# --- 2. events per PutEvents --------------------------------------------------------------
def stream_batches(world: MeteredDeployment, records: int) -> float:
    for _ in range(records):
        status, _, task = world.call("POST", "/tasks", {"type": "scale.batch"})
        assert status == 202, task
    world.meter.reset()
    assert world.pump.poll_stream() == records
    puts = [r for r in world.meter.requests if r.operation == "PutEvents"]
    entries = sum(len(r.params["Entries"]) for r in puts)
    print(
        f"  one stream batch of {records} records: {world.meter.invocations['stream']} "
        f"invocation, {len(puts)} PutEvents, {entries} events, "
        f"{world.meter.seconds['stream'][0] * 1000:.0f} ms on moto, of which waiting for "
        f"PutEvents {sum(r.seconds for r in puts) * 1000:.0f} ms"
    )
    return entries / len(puts)


# --- 3. list pages ------------------------------------------------------------------------
def page_times(repo: TaskRepository, clock: ManualClock, count: int, rounds: int) -> float:
    for _ in range(count):
        submit(repo, clock, LONG, owner="lister")
    cursor: str | None = None
    cursors: list[str | None] = []
    while True:  # walk to the last page, keeping each page's cursor
        cursors.append(cursor)
        page = repo.list_page(ListQuery(owner="lister", limit=100, cursor=cursor), clock.now())
        cursor = page.next_cursor
        if cursor is None:
            break
    first, last = cursors[0], cursors[-1]
    times: dict[str | None, list[float]] = {first: [], last: []}
    for _ in range(rounds):
        for where in (first, last):
            query = ListQuery(owner="lister", limit=100, cursor=where)
            start = time.perf_counter()
            page = repo.list_page(query, clock.now())
            times[where].append(time.perf_counter() - start)
            assert page.items
    return statistics.median(times[last]) / statistics.median(times[first])


def moto_pages(meter: Meter, repo: TaskRepository, clock: ManualClock) -> None:
    """On DynamoDB: the requests of each page of 100 of one owner's tasks, first to last."""
    cursor = None
    per_page: list[dict[str, int]] = []
    while True:
        meter.reset()
        page = repo.list_page(ListQuery(owner=OWNER, limit=100, cursor=cursor), clock.now())
        per_page.append(meter.counts())
        cursor = page.next_cursor
        if cursor is None:
            break
    print(f"  dynamodb (moto): page 1 {per_page[0]}, page {len(per_page)} {per_page[-1]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="fewer tasks, fewer rounds (CI)")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    big = 100_000 if args.short else 1_000_000
    rounds = 3 if args.short else 7
    moto_open = (10, 100) if args.short else (20, 2_000)
    listed = 1_000 if args.short else 10_000
    label = "1M" if big == 1_000_000 else f"{big // 1000}k"

    print(f"sweep: {DUE} due tasks, {rounds} rounds each, medians")
    with tempfile.TemporaryDirectory() as folder:

        def make_sqlite(count: int) -> tuple[TaskRepository, ManualClock]:
            path = Path(folder) / f"sweep-{count}.db"
            repo, clock = SQLiteTaskRepository(path), ManualClock()
            fill_sqlite(path, repo, clock, count)
            return repo, clock

        def make_memory(count: int) -> tuple[TaskRepository, ManualClock]:
            repo, clock = InMemoryTaskRepository(), ManualClock()
            fill_memory(repo, clock, count)
            return repo, clock

        sweep_ratios = {
            "sqlite": sweeps("sqlite", make_sqlite, big, rounds),
            "memory": sweeps("memory", make_memory, big, rounds),
        }
        gc.collect()
        page_ratios = {
            "sqlite": page_times(
                SQLiteTaskRepository(Path(folder) / "list.db"), ManualClock(), listed, rounds * 5
            ),
            "memory": page_times(InMemoryTaskRepository(), ManualClock(), listed, rounds * 5),
        }
    with running_moto_server() as endpoint:
        client = boto3.client(
            "dynamodb",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        meter = Meter()
        meter.attach(client, component="repository")
        moto_pages(meter, *moto_sweep(meter, client, "scale", moto_open))
        print("stream")
        with MeteredDeployment.running(endpoint) as world:
            per_put = stream_batches(world, pricing.stream_batch_size())

    print()
    for store, ratio in sweep_ratios.items():
        print(f"ratio sweep {label} open/1k open {store}: {ratio:.2f} (target <= {TARGET})")
    for store, ratio in page_ratios.items():
        pages = listed // 100
        print(f"ratio list page {pages}/page 1 {store}: {ratio:.2f} (target <= {TARGET})")
    print(f"stream events per PutEvents at full batches: {per_put:.1f} (the most: 10)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
