"""The AWS deployment with a queue-fed processor, on moto server, and real `taskmanager
worker` processes serving the queue.

moto holds the table (with its stream), the bus with its rules and the queues: the
``TaskCreated`` rule of the worker's task types targets the processor queue (with a DLQ), as
the Terraform processor module with ``delivery = "queue"`` wires it. The task manager's own
Lambda functions run in-process: a :class:`~tests.e2e.pump.Pump` on a background thread reads
the stream (stream handler), the updates queue (updates handler) and an audit queue, and the
sweeper handler runs every half second. Workers are subprocesses that talk to moto over HTTP.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from taskmanager.adapters.dynamodb import create_table
from taskmanager.entrypoints import api, bootstrap, stream, sweeper, updates
from tests.e2e.pump import REGION, Pump
from tests.e2e.worker_processors import TASK_TYPES
from tests.support import ALICE, FakeLambdaContext, http_event, load_event

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "taskmanager.worker-e2e"
PROCESSORS_SOURCE = "worker.processors"
OUTBOUND = ["TaskCreated", "TaskRunning", "TaskSuccessful", "TaskFailed"]
#: The visibility timeout workers ask for (and the queue's): short, so that a lapse is quick.
VISIBILITY_TIMEOUT = 2
MAX_RECEIVE_COUNT = 3


def _queue(sqs: Any, name: str, **attributes: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


@dataclass
class WorkerProcess:
    """One `taskmanager worker` subprocess and its log."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        return self.process.wait(timeout)

    def wait_for_log(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            assert self.process.poll() is None or text in self.log(), self.log()
            assert time.monotonic() < deadline, f"{text!r} not in the log:\n{self.log()}"
            time.sleep(0.05)


@dataclass
class QueueWorld:
    moto_url: str
    table: str
    bus: str
    queue_url: str
    dlq_url: str
    reports_url: str
    pump: Pump
    sqs: Any
    directory: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    # -- the API, in-process --
    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        text = None if body is None else json.dumps(body)
        response = api.handler(http_event(method, path, text, owner=ALICE), FakeLambdaContext())
        return response["statusCode"], json.loads(response["body"])

    def submit(self, task_type: str, task_input: Any = None, **fields: Any) -> dict[str, Any]:
        status, task = self.call(
            "POST", "/tasks", {"type": task_type, "input": task_input, **fields}
        )
        assert status == 202, task
        return dict(task)

    def get(self, task_id: str) -> dict[str, Any]:
        status, task = self.call("GET", f"/tasks/{task_id}")
        assert status == 200, task
        return dict(task)

    def wait_for(
        self, task_id: str, predicate: Any, timeout: float = 20, what: str = "the condition"
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            task = self.get(task_id)
            if predicate(task):
                return task
            assert time.monotonic() < deadline, f"task {task_id}: no {what}: {task}"
            time.sleep(0.05)

    def wait_until_done(self, task_id: str, timeout: float = 20) -> dict[str, Any]:
        return self.wait_for(
            task_id, lambda t: t["status"] in {"SUCCESSFUL", "FAILED"}, timeout, "end"
        )

    # -- workers --
    def worker_env(self) -> dict[str, str]:
        """What a worker's environment holds in AWS (the settings Terraform outputs)."""
        return {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
            "PYTHONUNBUFFERED": "1",
            "AWS_ENDPOINT_URL": self.moto_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "TASKMANAGER_TABLE_NAME": self.table,
            "TASKMANAGER_EVENT_BUS_NAME": self.bus,
            "TASKMANAGER_PROCESSOR_SOURCE": PROCESSORS_SOURCE,
        }

    def start_worker(self, *args: str) -> WorkerProcess:
        env = self.worker_env()
        command = [
            sys.executable,
            "-m",
            "taskmanager.entrypoints.cli",
            "worker",
            "--queue-url",
            self.queue_url,
            "--processor",
            "tests.e2e.worker_processors:processors",
            "--wait-seconds",
            "1",
            "--visibility-timeout",
            str(VISIBILITY_TIMEOUT),
            *args,
        ]
        return self.start_process(command, env)

    def start_process(
        self, command: Sequence[str] | str, env: dict[str, str], *, shell: bool = False
    ) -> WorkerProcess:
        """A worker started by ``command``; stopped by :meth:`stop_workers`."""
        log_path = self.directory / f"worker-{len(self.workers)}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # the docs' own commands, in tests
                command, stdout=log, stderr=subprocess.STDOUT, env=env, shell=shell, cwd=ROOT
            )
        worker = WorkerProcess(process, log_path)
        self.workers.append(worker)
        worker.wait_for_log("worker on ")
        return worker

    def stop_workers(self) -> None:
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.signal(signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.wait()
        self.workers.clear()

    # -- queues --
    def drain(self, queue_url: str) -> list[dict[str, Any]]:
        """Every message now visible on the queue (deleted)."""
        found: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return found
            found.extend(messages)
            self.sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                    for n, m in enumerate(messages)
                ],
            )

    def reports_of(self, task_id: str) -> list[dict[str, Any]]:
        """The TaskUpdated details of the task that crossed the bus since the last call."""
        details = [json.loads(m["Body"])["detail"] for m in self.drain(self.reports_url)]
        return [d for d in details if d["task_id"] == task_id]

    def queue_counts(self, queue_url: str) -> tuple[int, int]:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return (
            int(attributes["ApproximateNumberOfMessages"]),
            int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        )


def _forget_handlers() -> None:
    bootstrap.reset()
    for module in (api, stream, updates, sweeper):
        module._lambda_handler.cache_clear()


class _PumpThread(threading.Thread):
    """Lambda's pollers and the scheduled sweeper, until stopped."""

    def __init__(self, pump: Pump) -> None:
        super().__init__(name="pump", daemon=True)
        self.pump = pump
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        next_sweep = 0.0
        try:
            while not self.halt.is_set():
                busy = self.pump.poll_stream() + self.pump.poll_updates() + self.pump.poll_audit()
                if time.monotonic() >= next_sweep:
                    sweeper.handler(load_event("scheduled_sweep.json"), FakeLambdaContext())
                    next_sweep = time.monotonic() + 0.5
                if not busy:
                    self.halt.wait(0.05)
        except BaseException as exc:  # surfaced by the fixture
            self.error = exc


@contextlib.contextmanager
def queue_world(
    moto_server: str, directory: Path, task_types: Sequence[str] = TASK_TYPES
) -> Iterator[QueueWorld]:
    suffix = uuid.uuid4().hex[:8]
    table = f"tasks-{suffix}"
    bus = f"taskmanager-worker-{suffix}"
    with pytest.MonkeyPatch.context() as env:
        for name, value in {
            "AWS_ENDPOINT_URL": moto_server,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "TASKMANAGER_TABLE_NAME": table,
            "TASKMANAGER_EVENT_BUS_NAME": bus,
            "TASKMANAGER_EVENT_SOURCE": SOURCE,
            "TASKMANAGER_PROCESSOR_SOURCES": json.dumps(
                {task_type: [PROCESSORS_SOURCE] for task_type in task_types}
            ),
            "POWERTOOLS_SERVICE_NAME": "taskmanager-worker-e2e",
        }.items():
            env.setenv(name, value)
        _forget_handlers()
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        events = boto3.client("events", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        create_table(dynamodb, table)
        events.create_event_bus(Name=bus)

        def rule(name: str, pattern: dict[str, Any], queue_arn: str) -> None:
            events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(pattern))
            events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "q", "Arn": queue_arn}])

        # The processor queue as the Terraform module makes it (short timeout for tests).
        dlq_url, dlq_arn = _queue(sqs, f"worker-dlq-{suffix}")
        redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
        queue_url, queue_arn = _queue(
            sqs,
            f"worker-{suffix}",
            VisibilityTimeout=str(VISIBILITY_TIMEOUT),
            RedrivePolicy=json.dumps(redrive),
        )
        pattern = {
            "source": [SOURCE],
            "detail-type": ["TaskCreated"],
            "detail": {"type": list(task_types)},
        }
        rule(f"worker-{suffix}", pattern, queue_arn)
        updates_url, updates_arn = _queue(sqs, f"updates-{suffix}", VisibilityTimeout="0")
        rule(f"updates-{suffix}", {"detail-type": ["TaskUpdated"]}, updates_arn)
        reports_url, reports_arn = _queue(sqs, f"reports-{suffix}")
        rule(f"reports-{suffix}", {"detail-type": ["TaskUpdated"]}, reports_arn)
        audit_url, audit_arn = _queue(sqs, f"audit-{suffix}")
        rule(f"audit-{suffix}", {"source": [SOURCE], "detail-type": OUTBOUND}, audit_arn)
        pump = Pump(
            dynamodb=dynamodb,
            streams=boto3.client("dynamodbstreams", region_name=REGION),
            sqs=sqs,
            table_name=table,
            updates_queue=updates_url,
            audit_queue=audit_url,
            processor_queues={},
            processors={},
            stream_handler=stream.handler,
            updates_handler=updates.handler,
        )
        world = QueueWorld(
            moto_url=moto_server,
            table=table,
            bus=bus,
            queue_url=queue_url,
            dlq_url=dlq_url,
            reports_url=reports_url,
            pump=pump,
            sqs=sqs,
            directory=directory,
        )
        poller = _PumpThread(pump)
        poller.start()
        try:
            yield world
        finally:
            world.stop_workers()
            poller.halt.set()
            poller.join(10)
            _forget_handlers()
        if poller.error is not None:
            raise poller.error
