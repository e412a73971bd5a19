"""The processor SDK: turn a Python function into the processor of one task type.

    processor = Processor("report.render", render)     # render(input, ctx) -> result
    handler = processor.lambda_handler                  # an EventBridge target in AWS

On a ``TaskCreated`` event the processor reads the task's status (skipping a task that is
already finished: a redelivered event, a cancelled task), reports ``RUNNING``, runs the
function (which may report progress through ``ctx``), then reports ``SUCCESSFUL`` with the
return value or ``FAILED`` with the exception's code and message. Once the task is finished
elsewhere (cancelled, timed out) ``ctx.cancelled`` turns true and nothing more is reported.

Reports go through a :class:`Transport`: two methods, so the same processor object runs as a
Lambda function (:class:`AwsTransport`: EventBridge ``PutEvents`` and a DynamoDB ``GetItem``
of the status), as a worker on a queue (:mod:`taskmanager.worker`, the same transport) and
inside ``taskmanager serve`` (a transport calling the use case directly).

A task may be handed to its processor again while it is RUNNING (a redelivered message, a
restarted server): that is a new attempt, and the function sees ``ctx.attempt`` and the
progress the earlier attempt reported (``ctx.previous_progress``) to resume from there.
"""

from __future__ import annotations

import gc
import inspect
import json
import logging
import os
import re
import threading
import time
from typing import TYPE_CHECKING, Any, ClassVar, Final

from pydantic import ValidationError

from taskmanager.domain.errors import InvalidRequestError
from taskmanager.domain.events import (
    TaskCreated,
    TaskCreatedEvent,
    TaskUpdated,
)
from taskmanager.domain.model import (
    ERROR_CODE_PATTERN,
    MAX_ERROR_MESSAGE_BYTES,
    MAX_PROGRESS_MESSAGE_BYTES,
    MAX_SEQUENCE,
    Progress,
    TaskError,
    TaskStatus,
)
from taskmanager.retry import NO_RETRY, RetryPolicy
from taskmanager.transports import (
    AwsTransport,
    DirectTransport,
    TaskState,
    Transport,
    read_state,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from taskmanager.worker import Worker

# The transports live in their own module; importing them from here keeps working.
__all__ = [
    "CANCEL_CHECK_INTERVAL",
    "DEFAULT_ERROR_CODE",
    "FRESH_STATUS_SECONDS",
    "INVALID_RESULT_CODE",
    "AwsTransport",
    "DirectTransport",
    "Processor",
    "ProcessorContext",
    "ProcessorError",
    "RetryPolicy",
    "TaskState",
    "Transport",
    "task_error",
    "truncate_utf8",
]

logger = logging.getLogger("taskmanager.processor")

DEFAULT_ERROR_CODE: Final = "PROCESSOR_ERROR"
INVALID_RESULT_CODE: Final = "INVALID_RESULT"
#: ``ctx.cancelled`` asks the transport at most this often (seconds); the final check
#: before the outcome is reported always asks.
CANCEL_CHECK_INTERVAL: Final = 2.0
#: Before the outcome is reported the status is read again, unless it was read less than
#: this long ago (seconds): a function that returns at once costs one status read.
FRESH_STATUS_SECONDS: Final = 1.0
_CODE_RE: Final = re.compile(ERROR_CODE_PATTERN)


class ProcessorError(Exception):
    """Raise it (or any exception with a ``code`` attribute) to fail the task with a code.

    ``code`` must match ``^[A-Z][A-Z0-9_]{0,63}$``; another code becomes
    ``PROCESSOR_ERROR``. The message is cut to 4 KiB."""

    code: ClassVar[str] = DEFAULT_ERROR_CODE

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code  # type: ignore[misc]  # an instance may carry its own code
        self.message = message


# --- the function's view --------------------------------------------------------------------


def truncate_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, on a character boundary."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", "ignore") + "..."


class _Sequence:
    """Per-attempt ``sequence`` numbers: microseconds since the epoch when the attempt
    starts, then +1 per update. A redelivered ``TaskCreated`` that runs the task again thus
    numbers its reports above those of the earlier attempt, which would otherwise make
    every new report look stale."""

    def __init__(self) -> None:
        self._next = min(time.time_ns() // 1000, MAX_SEQUENCE // 2)
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            value = self._next
            self._next += 1
            return value


class ProcessorContext:
    """What the function sees: its task, its attempt, progress reports and whether it was
    cancelled."""

    def __init__(
        self,
        event: TaskCreated,
        transport: Transport,
        sequence: Callable[[], int],
        *,
        attempt: int = 1,
        previous_progress: Progress | None = None,
    ) -> None:
        self.task_id: str = event.id
        self.task_type: str = event.type
        self.deadline_at = event.deadline_at
        self.heartbeat_seconds = event.heartbeat_seconds
        #: 1 for the first delivery of the task; more when it was handed over again.
        self.attempt = attempt
        #: The progress an earlier attempt (or an earlier try of this one) reported, to
        #: resume from; None on a first attempt.
        self.previous_progress = previous_progress
        #: How many times the function was retried in this attempt (its retry policy).
        self.retries = 0
        self._transport = transport
        self._sequence = sequence
        self._cancelled = False
        self._checked_at = time.monotonic()
        #: monotonic time of the last report sent (a worker sends heartbeats after quiet).
        self.reported_at = self._checked_at
        self.last_progress: Progress | None = previous_progress

    @property
    def cancelled(self) -> bool:
        """True once the task finished elsewhere (cancelled, timed out, deleted): stop
        working; nothing more will be reported."""
        if not self._cancelled and time.monotonic() - self._checked_at >= CANCEL_CHECK_INTERVAL:
            self.refresh()
        return self._cancelled

    @property
    def checked_at(self) -> float:
        """``time.monotonic()`` of the last status read."""
        return self._checked_at

    def refresh(self) -> bool:
        """Ask the transport now whether the task is still open; returns ``cancelled``."""
        if not self._cancelled:
            status = self._transport.status(self.task_id)
            self._checked_at = time.monotonic()
            self._cancelled = status is None or status.is_terminal
        return self._cancelled

    def abandon(self) -> None:
        """Report nothing more for this attempt (a worker stopping hands the task over)."""
        self._cancelled = True

    def progress(self, percent: float, message: str | None = None) -> None:
        """Report how far the task has come (0-100; a message of at most 1 KiB: longer
        messages are cut). Also counts as a heartbeat. Does nothing once cancelled."""
        if self.cancelled:
            return
        if message is not None:
            message = truncate_utf8(message, MAX_PROGRESS_MESSAGE_BYTES)
        progress = Progress(percent=percent, message=message)
        self._send(progress)
        self.last_progress = progress

    def heartbeat(self) -> None:
        """Tell the task manager the task is alive (for tasks with ``heartbeat_seconds``)."""
        if not self.cancelled:
            self._send()

    def _send(self, progress: Progress | None = None) -> None:
        """One RUNNING report (with progress, or a bare heartbeat)."""
        update = TaskUpdated.model_construct(
            task_id=self.task_id,
            status=TaskStatus.RUNNING,
            sequence=self._sequence(),
            progress=progress,
        )
        self._transport.send(update)
        self.reported_at = time.monotonic()


# --- the processor --------------------------------------------------------------------------


def task_error(exc: BaseException) -> TaskError:
    """The ``error`` a failed function reports: the exception's ``code`` if it is a valid
    code (else ``PROCESSOR_ERROR``) and its message, cut to 4 KiB."""
    code = getattr(exc, "code", None)
    if not isinstance(code, str) or not _CODE_RE.match(code):
        code = DEFAULT_ERROR_CODE
    message = getattr(exc, "message", None)
    if not isinstance(message, str) or not message:
        message = str(exc) or type(exc).__name__
    return TaskError(code=code, message=truncate_utf8(message, MAX_ERROR_MESSAGE_BYTES))


def _wants_context(fn: Callable[..., Any]) -> bool:
    """Functions of one parameter are called ``fn(input)``, others ``fn(input, ctx)``."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    variadic = any(p.kind is p.VAR_POSITIONAL for p in params)
    return variadic or len(positional) >= 2


class Processor:
    """The processor of one task type: ``fn(input, ctx) -> result`` (or ``fn(input)``).

    ``transport`` may be given later (``taskmanager serve`` passes its own to
    :meth:`handle`); :meth:`lambda_handler` builds an :class:`AwsTransport` from the
    environment on first use. ``retry`` says which failures of ``fn`` are tried again
    (:class:`~taskmanager.retry.RetryPolicy`; by default none)."""

    def __init__(
        self,
        task_type: str,
        fn: Callable[..., Any],
        transport: Transport | None = None,
        *,
        retry: RetryPolicy = NO_RETRY,
    ) -> None:
        self.task_type = task_type
        self.fn = fn
        self.transport = transport
        self.retry = retry
        self._with_context = _wants_context(fn)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Processor({self.task_type!r}, {getattr(self.fn, '__qualname__', self.fn)!r})"

    # -- entry points --
    def lambda_handler(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        """An EventBridge target: the event is the ``TaskCreated`` envelope."""
        detail_type = event.get("detail-type")
        if detail_type != TaskCreated.DETAIL_TYPE:
            logger.warning("ignored a %s event", detail_type)
            return {"task_id": None, "outcome": "ignored"}
        # The one envelope this handler reads, validated as the event union would (same
        # model), without building the union's other four envelopes on a cold start.
        parsed = TaskCreatedEvent.model_validate(dict(event))
        outcome = self.handle(parsed.detail, self._aws_transport())
        return {"task_id": parsed.detail.id, "outcome": outcome}

    def run_worker(self, queue_url: str | None = None, **options: Any) -> int:
        """Serve this processor's tasks from an SQS queue until SIGTERM or SIGINT; returns
        the exit status, 0. ``queue_url`` defaults to ``TASKMANAGER_QUEUE_URL``; options not
        given (:class:`taskmanager.worker.Worker`'s keywords) are read from the environment
        as ``taskmanager worker`` reads them (``TASKMANAGER_CONCURRENCY``, ...). Logs to
        stderr at INFO unless logging is configured already."""
        from taskmanager.worker import (  # noqa: PLC0415  # boto only when asked
            QUEUE_URL_VARIABLE,
            Worker,
            options_from_environment,
        )

        # An entry point, like `taskmanager worker`: its log goes to stderr unless the
        # program configured logging already (basicConfig then does nothing).
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        queue_url = queue_url or os.environ.get(QUEUE_URL_VARIABLE)
        if not queue_url:
            raise RuntimeError(f"no queue URL given and {QUEUE_URL_VARIABLE} is not set")
        worker: Worker = Worker([self], queue_url, **{**options_from_environment(), **options})
        return worker.run()

    def handle(
        self,
        event: TaskCreated,
        transport: Transport | None = None,
        *,
        attempt: int | None = None,
        on_start: Callable[[ProcessorContext], None] | None = None,
    ) -> str:
        """Run the task ``event`` announces; returns what happened: ``skipped``,
        ``successful``, ``failed``, ``cancelled`` or ``ignored`` (another task type).

        ``attempt``: the delivery's number where the caller knows it (a queue's receive
        count); otherwise 1, or 2 for a task an earlier attempt left RUNNING. ``on_start``
        is given the function's context once RUNNING is reported (a worker keeps it to send
        heartbeats and to hand the task over when it stops)."""
        transport = transport or self.transport
        if transport is None:
            raise ValueError("Processor.handle needs a transport")
        if event.type != self.task_type:
            logger.warning("ignored task %s of type %s", event.id, event.type)
            return "ignored"
        state = read_state(transport, event.id)
        if state is None or state.status.is_terminal:
            logger.info("skipped task %s: status %s", event.id, state and state.status)
            return "skipped"
        resumed = state.status is TaskStatus.RUNNING
        sequence = _Sequence()
        ctx = ProcessorContext(
            event,
            transport,
            sequence,
            attempt=attempt or (2 if resumed else 1),
            previous_progress=state.progress if resumed else None,
        )
        ctx._send()  # the context's own report path
        if on_start is not None:
            on_start(ctx)
        final = self._run(event, ctx)
        if final is None or self._finished_elsewhere(ctx):
            logger.info("task %s finished elsewhere; its outcome is not reported", event.id)
            return "cancelled"
        transport.send(final.model_copy(update={"sequence": sequence()}))
        return "successful" if final.status is TaskStatus.SUCCESSFUL else "failed"

    @staticmethod
    def _finished_elsewhere(ctx: ProcessorContext) -> bool:
        """The last look before the outcome: a fresh read, unless the status was read
        less than :data:`FRESH_STATUS_SECONDS` ago."""
        if time.monotonic() - ctx.checked_at < FRESH_STATUS_SECONDS:
            return ctx.cancelled  # no read: the last one is fresh
        return ctx.refresh()

    def _run(self, event: TaskCreated, ctx: ProcessorContext) -> TaskUpdated | None:
        """Call the function, retrying as the policy says; the outcome to report (None:
        the task finished elsewhere during a retry's wait)."""
        policy = self.retry
        while True:
            try:
                result = self.fn(event.input, ctx) if self._with_context else self.fn(event.input)
            except Exception as exc:
                error = task_error(exc)
                try_number = ctx.retries + 1
                if try_number < policy.attempts and policy.is_retryable(exc, error.code):
                    if not self._wait_to_retry(ctx, error, try_number):
                        return None
                    continue
                if isinstance(exc, ProcessorError):
                    # A failure the function meant to report: its code and message say it all.
                    logger.info("task %s failed: %s: %s", event.id, error.code, error.message)
                else:
                    logger.error("task %s failed: %s", event.id, error.code, exc_info=exc)
                return TaskUpdated.model_construct(
                    task_id=event.id, status=TaskStatus.FAILED, sequence=0, error=error
                )
            return _successful(event.id, result)

    def _wait_to_retry(self, ctx: ProcessorContext, error: TaskError, try_number: int) -> bool:
        """Report the failed try as progress, wait its backoff (looking for a cancel), and
        get the context ready for the next try; False if the task finished meanwhile."""
        delay = self.retry.backoff(try_number)
        logger.info(
            "task %s: try %d of %d failed: %s; retrying in %.1f s",
            ctx.task_id,
            try_number,
            self.retry.attempts,
            error.code,
            delay,
        )
        resume_from = ctx.last_progress
        percent = resume_from.percent if resume_from is not None else 0
        message = (
            f"attempt {try_number} of {self.retry.attempts} failed: {error.code}: "
            f"{error.message}; retrying in {delay:.1f} s"
        )
        ctx.progress(percent, message)
        deadline = time.monotonic() + delay
        while (left := deadline - time.monotonic()) > 0:
            if ctx.cancelled:
                return False
            time.sleep(min(left, 0.2))
        if ctx.refresh():
            return False
        ctx.retries = try_number
        ctx.previous_progress = resume_from
        ctx.last_progress = resume_from
        return True

    # -- AWS --
    def _aws_transport(self) -> Transport:
        with self._lock:
            if self.transport is None:
                # A Lambda's first invocation: what the process holds now lives as long as
                # it does, so no full garbage collection needs to walk it again (see
                # taskmanager.entrypoints.observability.instrument).
                gc.freeze()
                self.transport = AwsTransport.from_environment()
            return self.transport


def _successful(task_id: str, result: Any) -> TaskUpdated:
    """SUCCESSFUL with ``result``, or FAILED ``INVALID_RESULT`` if the result is not JSON
    or is over 128 KiB (the task manager would refuse it)."""
    try:
        # Plain JSON only: a set or bytes would pass the size check (pydantic serialises them)
        # and then fail in the store, leaving the task RUNNING until its deadline.
        json.dumps(result, allow_nan=False)
        return TaskUpdated(task_id=task_id, status=TaskStatus.SUCCESSFUL, sequence=1, result=result)
    except (TypeError, ValueError, InvalidRequestError) as exc:
        if isinstance(exc, ValidationError):
            reason = exc.errors()[0]["msg"]
        elif isinstance(exc, InvalidRequestError):
            reason = exc.message
        else:
            reason = f"not JSON: {exc}"
        message = truncate_utf8(f"the result was refused: {reason}", MAX_ERROR_MESSAGE_BYTES)
        error = TaskError(code=INVALID_RESULT_CODE, message=message)
        return TaskUpdated.model_construct(
            task_id=task_id, status=TaskStatus.FAILED, sequence=1, error=error
        )
