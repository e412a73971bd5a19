"""A worker that runs processors on tasks from an SQS queue, anywhere (a container, a host),
for any duration.

    taskmanager worker --queue-url URL --processor mymodule:processor --concurrency 4
    Worker([processor], queue_url, concurrency=4).run()        # the same from Python

The queue is the target of the task type's ``TaskCreated`` rule: each message body is the
EventBridge envelope a Lambda processor would get. The worker

- long-polls the queue and runs up to ``concurrency`` tasks at once, each on a thread of its
  own, through :meth:`taskmanager.processor.Processor.handle` and an ``AwsTransport``
  (``TaskUpdated`` by ``PutEvents``, status by ``GetItem``), so a task runs exactly as it
  would on Lambda, for as long as it needs;
- keeps each running task's message invisible, extending its visibility before it lapses;
- sends the task's heartbeats itself (a bare ``RUNNING`` once it was quiet for half its
  ``heartbeat_seconds``), so a function that never calls ``ctx.heartbeat()`` is not timed
  out while it runs; and reads the task's status as often, so that ``ctx.cancelled`` turns
  true within one heartbeat period of a cancel (half of it, plus a tick);
- deletes a message only once the task's outcome was reported (``PutEvents`` accepted it),
  or when there is nothing to do (the task is finished or was cancelled);
- leaves a message it cannot read (not JSON, not a ``TaskCreated``, a task type it has no
  processor for) on the queue with one log line: made visible again at once, it reaches the
  queue's dead-letter queue after its maximum receive count;
- on SIGTERM or SIGINT stops receiving, lets running tasks finish for ``grace_seconds``,
  then hands the others back (visibility 0, so another worker takes them at once, as a new
  attempt that sees the progress reported so far) and returns 0.

A message received again (the worker died, or handed it back) is a new attempt:
``ctx.attempt`` is the message's receive count and ``ctx.previous_progress`` the progress
the earlier attempt reported.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from pydantic import ValidationError

from taskmanager.domain.events import TaskCreated, TaskCreatedEvent
from taskmanager.processor import AwsTransport, Processor

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from taskmanager.processor import ProcessorContext, Transport

logger = logging.getLogger("taskmanager.worker")

#: SQS long polling: a receive waits up to this long for a message (20 is SQS's maximum).
DEFAULT_WAIT_SECONDS: Final = 20
DEFAULT_GRACE_SECONDS: Final = 30.0
#: How long a received message stays invisible before the worker extends it (seconds).
DEFAULT_VISIBILITY_TIMEOUT: Final = 60
#: SQS's range for a visibility timeout (12 hours at most); the worker needs 2 s at least to
#: extend it in time.
MIN_VISIBILITY_TIMEOUT: Final = 2
MAX_VISIBILITY_TIMEOUT: Final = 43_200
MAX_CONCURRENCY: Final = 256
#: SQS returns at most ten messages per receive.
_MAX_BATCH: Final = 10


#: Environment variables a worker's options may come from (a container's task definition),
#: by ``Worker`` keyword.
OPTION_VARIABLES: Final = {
    "concurrency": "TASKMANAGER_CONCURRENCY",
    "grace_seconds": "TASKMANAGER_GRACE_SECONDS",
    "wait_seconds": "TASKMANAGER_WAIT_SECONDS",
    "visibility_timeout": "TASKMANAGER_VISIBILITY_TIMEOUT",
}
QUEUE_URL_VARIABLE: Final = "TASKMANAGER_QUEUE_URL"


def options_from_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The :class:`Worker` options set in the environment (``TASKMANAGER_CONCURRENCY``,
    ``TASKMANAGER_GRACE_SECONDS``, ``TASKMANAGER_WAIT_SECONDS``,
    ``TASKMANAGER_VISIBILITY_TIMEOUT``); a value that is not a number raises ``ValueError``
    naming the variable."""
    env = os.environ if environ is None else environ
    options: dict[str, Any] = {}
    for option, variable in OPTION_VARIABLES.items():
        text = env.get(variable)
        if text:
            try:
                options[option] = float(text) if option == "grace_seconds" else int(text)
            except ValueError:
                raise ValueError(f"{variable}={text!r} is not a number") from None
    return options


@dataclass(eq=False)
class _Job:
    """One received message while its task runs."""

    message_id: str
    receipt: str
    visible_until: float
    ctx: ProcessorContext | None = None
    #: Handed back (visibility 0) by a stopping worker: the thread must not delete it.
    released: bool = False
    done: threading.Event = field(default_factory=threading.Event)


class Worker:
    """Serves ``processors`` (one per task type) from the SQS queue at ``queue_url``.

    ``transport`` and ``sqs_client`` default to clients built from the environment
    (``TASKMANAGER_TABLE_NAME``, ``TASKMANAGER_EVENT_BUS_NAME``,
    ``TASKMANAGER_PROCESSOR_SOURCE`` and the usual ``AWS_*`` settings).
    ``visibility_timeout``: how long each received message stays invisible (asked for with
    every receive, so the worker needs no permission to read the queue's attributes), then
    extended by as much whenever less than half of it is left."""

    def __init__(
        self,
        processors: Iterable[Processor],
        queue_url: str,
        *,
        concurrency: int = 1,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        wait_seconds: int = DEFAULT_WAIT_SECONDS,
        visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT,
        transport: Transport | None = None,
        sqs_client: Any = None,
    ) -> None:
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise ValueError(f"concurrency must be 1 to {MAX_CONCURRENCY}, got {concurrency}")
        if grace_seconds < 0:
            raise ValueError(f"grace_seconds must not be negative, got {grace_seconds}")
        if not 0 <= wait_seconds <= DEFAULT_WAIT_SECONDS:
            raise ValueError(f"wait_seconds must be 0 to 20, got {wait_seconds}")
        if not MIN_VISIBILITY_TIMEOUT <= visibility_timeout <= MAX_VISIBILITY_TIMEOUT:
            raise ValueError(
                f"visibility_timeout must be {MIN_VISIBILITY_TIMEOUT} to "
                f"{MAX_VISIBILITY_TIMEOUT}, got {visibility_timeout}"
            )
        self.processors = {p.task_type: p for p in processors}
        if not self.processors:
            raise ValueError("a worker needs at least one processor")
        self.queue_url = queue_url
        self.concurrency = concurrency
        self.grace_seconds = grace_seconds
        self.wait_seconds = wait_seconds
        self.visibility_timeout = visibility_timeout
        self._transport = transport
        self._sqs = sqs_client
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._jobs: set[_Job] = set()
        self._receiver: threading.Thread | None = None

    # -- lifecycle --
    def run(self) -> int:
        """Serve until :meth:`stop` (or SIGTERM/SIGINT when called on the main thread);
        returns 0 once running tasks finished or were handed back."""
        self._connect()
        restore = self._install_signal_handlers()
        try:
            receiver = threading.Thread(target=self._receive_loop, name="worker-receive")
            receiver.daemon = True  # a receive may wait 20 s; exit does not wait for it
            self._receiver = receiver
            receiver.start()
            keeper = threading.Thread(target=self._keep_loop, name="worker-keep", daemon=True)
            keeper.start()
            self._stopping.wait()
            self._drain()
        finally:
            restore()
        logger.info("worker stopped")
        return 0

    def stop(self) -> None:
        """Stop receiving; :meth:`run` then lets running tasks finish (``grace_seconds``)."""
        if not self._stopping.is_set():
            logger.info("stopping: no new tasks; %g s for running ones", self.grace_seconds)
            self._stopping.set()
            with self._room:
                self._room.notify_all()

    def _connect(self) -> None:
        if self._transport is None or self._sqs is None:
            from botocore.config import Config  # noqa: PLC0415

            from taskmanager.adapters.aws_session import new_session  # noqa: PLC0415

            # One connection per running task plus the receiver's and the keeper's.
            config = Config(max_pool_connections=self.concurrency + 4)
            if self._transport is None:
                self._transport = AwsTransport.from_environment(client_config=config)
            if self._sqs is None:
                self._sqs = new_session().create_client("sqs", config=config)
        logger.info(
            "worker on %s: %s; concurrency %d, visibility %d s",
            self.queue_url,
            ", ".join(sorted(self.processors)),
            self.concurrency,
            self.visibility_timeout,
        )

    def _install_signal_handlers(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        for sig in previous:
            signal.signal(sig, lambda _signo, _frame: self.stop())

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore

    def _drain(self) -> None:
        """Wait for running tasks up to the grace period, then hand the rest back."""
        deadline = time.monotonic() + self.grace_seconds
        with self._room:
            while self._jobs and (left := deadline - time.monotonic()) > 0:
                self._room.wait(min(left, 0.1))
            unfinished = list(self._jobs)
            for job in unfinished:
                job.released = True
                if job.ctx is not None:
                    job.ctx.abandon()  # nothing more is reported for this attempt
        if unfinished:
            logger.warning(
                "%d task(s) still running after %g s: handed back to the queue",
                len(unfinished),
                self.grace_seconds,
            )
            self._set_visibility(unfinished, 0)
        if self._receiver is not None:
            # A receive in flight may still bring messages: it hands them back itself.
            self._receiver.join(max(0.0, deadline - time.monotonic()))

    # -- receiving --
    def _receive_loop(self) -> None:
        while not self._stopping.is_set():
            with self._room:
                while len(self._jobs) >= self.concurrency and not self._stopping.is_set():
                    self._room.wait()
                room = self.concurrency - len(self._jobs)
            if self._stopping.is_set():
                return
            try:
                messages = self._receive(min(room, _MAX_BATCH))
            except Exception as exc:
                logger.warning("receive failed: %s; trying again in 1 s", exc)
                self._stopping.wait(1.0)
                continue
            if self._stopping.is_set():
                self._release_messages(messages)
                return
            for message in messages:
                self._start(message)

    def _receive(self, count: int) -> list[dict[str, Any]]:
        answer = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=self.wait_seconds,
            VisibilityTimeout=self.visibility_timeout,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        messages: list[dict[str, Any]] = answer.get("Messages", [])
        return messages

    def _start(self, message: Mapping[str, Any]) -> None:
        job = _Job(
            message_id=message["MessageId"],
            receipt=message["ReceiptHandle"],
            visible_until=time.monotonic() + self.visibility_timeout,
        )
        with self._room:
            self._jobs.add(job)
        thread = threading.Thread(
            target=self._work, args=(job, message), name=f"task-{job.message_id[:8]}"
        )
        thread.daemon = True  # one still running when the grace period ends is abandoned
        thread.start()

    # -- one task --
    def _work(self, job: _Job, message: Mapping[str, Any]) -> None:
        try:
            self._handle(job, message)
        finally:
            job.done.set()
            with self._room:
                self._jobs.discard(job)
                self._room.notify_all()

    def _handle(self, job: _Job, message: Mapping[str, Any]) -> None:
        event = self._task_created(message)
        processor = None if event is None else self.processors.get(event.type)
        if event is None or processor is None:
            if event is not None:
                logger.warning(
                    "message %s: task %s is of type %s, which this worker has no processor "
                    "for; left for the dead-letter queue",
                    job.message_id,
                    event.id,
                    event.type,
                )
            self._set_visibility([job], 0)  # on to the DLQ after its maximum receive count
            return
        attributes = message.get("Attributes", {})
        attempt = int(attributes.get("ApproximateReceiveCount", "1"))

        def started(ctx: ProcessorContext) -> None:
            job.ctx = ctx
            if job.released:  # handed back while it was starting: report nothing more
                ctx.abandon()

        try:
            outcome = processor.handle(event, self._transport, attempt=attempt, on_start=started)
        except Exception:
            # A report that could not be delivered: the message comes back after its
            # visibility timeout, and the next attempt reads the status again.
            logger.exception("task %s: left on the queue for another attempt", event.id)
            return
        if job.released:
            return  # handed back while it ran; the next attempt decides
        logger.info("task %s: %s (attempt %d)", event.id, outcome, attempt)
        self._sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=job.receipt)

    def _task_created(self, message: Mapping[str, Any]) -> TaskCreated | None:
        """The ``TaskCreated`` in the message's body (an EventBridge envelope), or None
        with one log line."""
        try:
            body = json.loads(message.get("Body", ""))
            if not isinstance(body, dict) or body.get("detail-type") != TaskCreated.DETAIL_TYPE:
                kind = body.get("detail-type") if isinstance(body, dict) else type(body).__name__
                raise ValueError(f"not a TaskCreated event ({kind!r})")
            return TaskCreatedEvent.model_validate(body).detail
        except (ValueError, ValidationError) as exc:
            reason = str(exc).splitlines()[0]
            logger.warning(
                "message %s is not a TaskCreated event, left for the dead-letter queue: %s",
                message.get("MessageId"),
                reason,
            )
            return None

    # -- keeping running tasks alive --
    def _keep_loop(self) -> None:
        """Extend visibility before it lapses; heartbeats and cancel checks per task."""
        timeout = self.visibility_timeout
        tick = min(max(timeout / 4, 0.1), 5.0)
        while True:
            try:
                self._keep(timeout)
            except Exception:  # never let the keeper die: every running task depends on it
                logger.exception("keeping running tasks alive failed; trying again")
            time.sleep(tick)

    def _keep(self, timeout: int) -> None:
        now = time.monotonic()
        with self._room:
            jobs = [job for job in self._jobs if not job.released and not job.done.is_set()]
        due = [job for job in jobs if job.visible_until - now <= timeout / 2]
        if due:
            self._set_visibility(due, timeout)
            for job in due:
                job.visible_until = now + timeout
        for job in jobs:
            if job.ctx is not None and not job.released:
                self._keep_task(job.ctx, now)

    @staticmethod
    def _keep_task(ctx: ProcessorContext, now: float) -> None:
        """For a task with ``heartbeat_seconds``: read its status and send a heartbeat
        whenever half of that period passed without one. (Without it, ``ctx.cancelled``
        reads the status itself when the function asks, at most every
        ``CANCEL_CHECK_INTERVAL``: a read here would cost a request no one looks at.)"""
        if not ctx.heartbeat_seconds:
            return
        period = ctx.heartbeat_seconds / 2
        try:
            if now - ctx.checked_at >= period:
                ctx.refresh()
            if now - ctx.reported_at >= period:
                ctx.heartbeat()
        except Exception as exc:  # the next tick tries again; the function runs on
            logger.warning("task %s: heartbeat failed: %s", ctx.task_id, exc)

    def _set_visibility(self, jobs: list[_Job], seconds: int) -> None:
        for start in range(0, len(jobs), _MAX_BATCH):
            batch = jobs[start : start + _MAX_BATCH]
            try:
                answer = self._sqs.change_message_visibility_batch(
                    QueueUrl=self.queue_url,
                    Entries=[
                        {"Id": str(n), "ReceiptHandle": job.receipt, "VisibilityTimeout": seconds}
                        for n, job in enumerate(batch)
                    ],
                )
            except Exception as exc:
                logger.warning(
                    "changing the visibility of %d message(s) failed: %s", len(batch), exc
                )
                continue
            for failure in answer.get("Failed", []):
                logger.warning(
                    "changing the visibility of message %s failed: %s",
                    batch[int(failure["Id"])].message_id,
                    failure.get("Message") or failure.get("Code"),
                )

    def _release_messages(self, messages: list[dict[str, Any]]) -> None:
        """Hand back messages received while stopping."""
        jobs = [
            _Job(message_id=m["MessageId"], receipt=m["ReceiptHandle"], visible_until=0.0)
            for m in messages
        ]
        if jobs:
            self._set_visibility(jobs, 0)
