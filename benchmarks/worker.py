"""Tasks per second through one queue worker, beside a bare boto3 loop making the same calls.

A moto server (a subprocess on loopback) holds the task table, a bus and the task queue.
Each round preloads N tasks (CREATED items in the table, their TaskCreated envelopes on the
queue), then times how long it takes to run them all:

- worker: ``taskmanager.worker.Worker`` with a no-op processor, in this process (its receive
  loop and task threads), at concurrency 1 and 16;
- bare: the same requests written by hand with the same clients, at the same concurrency
  (receive up to min(10, free slots) messages, then per message on a thread: ``GetItem`` of
  the status, ``PutEvents`` RUNNING, ``PutEvents`` SUCCESSFUL, ``DeleteMessage``), without
  parsing, models, heartbeats or visibility bookkeeping.

Rounds alternate worker and bare, each round in the other order; the figure is the median
of the rounds' ratios. Every
request is counted (botocore's ``before-send`` hook) and divided by the tasks run.

Run: ``python benchmarks/worker.py`` (``--quick``: 2 rounds of 40 tasks, for a smoke run).
Prints a table, the calls per task by operation, ``ratio worker/bare: X`` (floor 0.7; the
lower of the two concurrencies) and ``aws calls per task: N``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import boto3
from botocore.config import Config

from taskmanager.adapters.dynamodb import DynamoDBTaskRepository, create_table
from taskmanager.adapters.memory import SystemClock, UuidIdFactory
from taskmanager.domain.events import TaskCreated, envelope, event_for
from taskmanager.domain.model import SubmitTask
from taskmanager.domain.services import submit_task
from taskmanager.processor import AwsTransport, Processor
from taskmanager.worker import Worker

REGION: Final = "us-east-1"
SOURCE: Final = "taskmanager"
TASK_TYPE: Final = "bench.noop"
FLOOR: Final = 0.7


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    """moto server in a process of its own, so that it does not share this one's GIL."""
    port = _free_port()
    code = (
        "from moto.server import ThreadedMotoServer; import time; "
        f"s = ThreadedMotoServer(ip_address='127.0.0.1', port={port}, verbose=False); "
        "s.start(); time.sleep(10**6)"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process, f"http://127.0.0.1:{port}"
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("moto server did not start")


class Counted:
    """The three clients, with every request counted by operation."""

    def __init__(self, endpoint: str, concurrency: int) -> None:
        config = Config(max_pool_connections=concurrency + 4, retries={"mode": "standard"})
        session = boto3.Session(
            region_name=REGION, aws_access_key_id="bench", aws_secret_access_key="bench"
        )
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.sqs = session.client("sqs", endpoint_url=endpoint, config=config)
        self.events = session.client("events", endpoint_url=endpoint, config=config)
        self.dynamodb = session.client("dynamodb", endpoint_url=endpoint, config=config)
        for client in (self.sqs, self.events, self.dynamodb):
            client.meta.events.register("before-send", self._count)

    def _count(self, request: Any, **_: Any) -> None:
        target = request.headers.get("X-Amz-Target", b"")
        name = target.decode() if isinstance(target, bytes) else str(target)
        with self._lock:
            self.calls[name.rsplit(".", 1)[-1] or "?"] += 1


class World:
    def __init__(self, endpoint: str) -> None:
        suffix = uuid.uuid4().hex[:8]
        setup = Counted(endpoint, 4)
        self.endpoint = endpoint
        self.table = f"bench-{suffix}"
        self.bus = f"bench-{suffix}"
        create_table(setup.dynamodb, self.table)
        setup.events.create_event_bus(Name=self.bus)
        self.queue_url = setup.sqs.create_queue(
            QueueName=f"bench-{suffix}", Attributes={"VisibilityTimeout": "60"}
        )["QueueUrl"]
        self._setup = setup
        self._repo = DynamoDBTaskRepository(setup.dynamodb, self.table)

    def preload(self, count: int) -> None:
        """``count`` CREATED tasks in the table and their TaskCreated on the queue."""
        clock, ids = SystemClock(), UuidIdFactory()
        bodies = []
        for n in range(count):
            task = submit_task(
                SubmitTask(type=TASK_TYPE, input={"n": n}),
                owner="bench",
                repo=self._repo,
                clock=clock,
                ids=ids,
            ).task
            event = event_for(task)
            assert isinstance(event, TaskCreated)
            bodies.append(envelope(event, SOURCE).model_dump_json(by_alias=True))
        for start in range(0, count, 10):
            self._setup.sqs.send_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "MessageBody": body}
                    for i, body in enumerate(bodies[start : start + 10])
                ],
            )


def run_worker(world: World, count: int, concurrency: int) -> tuple[float, Counter[str]]:
    clients = Counted(world.endpoint, concurrency)
    transport = AwsTransport(
        events_client=clients.events,
        dynamodb_client=clients.dynamodb,
        table_name=world.table,
        bus_name=world.bus,
        source="bench.processor",
    )
    worker = Worker(
        [Processor(TASK_TYPE, lambda _input: None)],
        world.queue_url,
        concurrency=concurrency,
        wait_seconds=1,
        transport=transport,
        sqs_client=clients.sqs,
    )
    world.preload(count)
    thread = threading.Thread(target=worker.run, daemon=True)
    started = time.perf_counter()
    thread.start()
    while clients.calls["DeleteMessage"] < count:
        time.sleep(0.002)
    elapsed = time.perf_counter() - started
    calls = Counter(clients.calls)
    worker.stop()
    thread.join(10)
    return elapsed, calls


def run_bare(world: World, count: int, concurrency: int) -> tuple[float, Counter[str]]:
    clients = Counted(world.endpoint, concurrency)
    sqs, events, dynamodb = clients.sqs, clients.events, clients.dynamodb
    world.preload(count)
    room = threading.Semaphore(concurrency)
    done = threading.Event()
    finished = Counter[str]()
    ended: list[float] = []
    lock = threading.Lock()

    def report(task_id: str, status: str) -> None:
        detail = json.dumps({"task_id": task_id, "status": status, "sequence": 1})
        events.put_events(
            Entries=[
                {
                    "Source": "bench.processor",
                    "DetailType": "TaskUpdated",
                    "Detail": detail,
                    "EventBusName": world.bus,
                }
            ]
        )

    def one(message: Any) -> None:
        try:
            task_id = json.loads(message["Body"])["detail"]["id"]
            dynamodb.get_item(
                TableName=world.table,
                Key={"task_id": {"S": task_id}},
                ProjectionExpression="#s, progress",
                ExpressionAttributeNames={"#s": "status"},
                ConsistentRead=True,
            )
            report(task_id, "RUNNING")
            report(task_id, "SUCCESSFUL")
            sqs.delete_message(QueueUrl=world.queue_url, ReceiptHandle=message["ReceiptHandle"])
        finally:
            room.release()
            with lock:
                finished["tasks"] += 1
                if finished["tasks"] == count:
                    ended.append(time.perf_counter())  # as the worker's clock stops
                    done.set()

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        while not done.is_set():
            room.acquire()
            free = 1
            while free < min(10, concurrency) and room.acquire(blocking=False):
                free += 1
            messages = sqs.receive_message(
                QueueUrl=world.queue_url,
                MaxNumberOfMessages=free,
                WaitTimeSeconds=1,
                VisibilityTimeout=60,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            ).get("Messages", [])
            for _ in range(free - len(messages)):
                room.release()
            for message in messages:
                pool.submit(one, message)
    # Not counting the receive still waiting when the last task ended (the worker's run is
    # timed to its last delete too).
    return ended[0] - started, Counter(clients.calls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 40 tasks")
    args = parser.parse_args()
    rounds, count = (2, 40) if args.quick else (5, 200)
    print(f"load average: {os.getloadavg()[0]:.2f}; {rounds} rounds of {count} tasks per side")
    moto, endpoint = start_moto()
    try:
        world = World(endpoint)
        ratios: dict[int, float] = {}
        per_task: Counter[str] = Counter()
        print(f"{'concurrency':<12}{'worker tasks/s':>16}{'bare tasks/s':>16}{'ratio':>8}")
        for concurrency in (1, 16):
            pairs = []
            for n in range(rounds):
                # Each round in the other order: moto slows as its queue and table fill up.
                if n % 2:
                    bare_s, _ = run_bare(world, count, concurrency)
                    worker_s, calls = run_worker(world, count, concurrency)
                else:
                    worker_s, calls = run_worker(world, count, concurrency)
                    bare_s, _ = run_bare(world, count, concurrency)
                pairs.append((count / worker_s, count / bare_s))
                if concurrency == 16:
                    per_task = calls
            worker_rate = statistics.median(w for w, _ in pairs)
            bare_rate = statistics.median(b for _, b in pairs)
            ratios[concurrency] = statistics.median(w / b for w, b in pairs)
            print(
                f"{concurrency:<12}{worker_rate:>16.1f}{bare_rate:>16.1f}"
                f"{ratios[concurrency]:>8.2f}"
            )
        by_operation = {op: n / count for op, n in sorted(per_task.items())}
        print("calls per task (concurrency 16, last round): " + json.dumps(by_operation))
        print(f"ratio worker/bare: {min(ratios.values()):.2f} (floor {FLOOR})")
        print(f"aws calls per task: {sum(per_task.values()) / count:.2f}")
    finally:
        moto.kill()
        moto.wait()


if __name__ == "__main__":
    main()
