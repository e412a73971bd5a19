"""Processors inside `taskmanager serve`: loading them and running them in the worker pool.

A processor reports through the same ``TaskUpdated`` path as in AWS: each update goes
through ``record_update`` (the use case the updates Lambda calls), so duplicates, stale and
illegal updates are classified exactly alike. The transport also reads a task's current
status, so a processor skips a cancelled or finished task.
"""

from __future__ import annotations

import importlib
import itertools
import logging
import re
from typing import TYPE_CHECKING, Any, Final

from pydantic import ValidationError

from taskmanager.domain.events import TaskUpdated
from taskmanager.domain.model import TaskError, TaskStatus
from taskmanager.domain.services import UpdateOutcome, record_update

if TYPE_CHECKING:
    from collections.abc import Callable

    from taskmanager.domain.events import TaskCreated
    from taskmanager.entrypoints.local.runtime import Job, LocalRuntime

logger = logging.getLogger("taskmanager.local")

_CODE: Final = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


class LocalTransport:
    """Sends a processor's updates to ``record_update``; reads status from the store."""

    def __init__(self, runtime: LocalRuntime) -> None:
        self._runtime = runtime

    def send(self, update: TaskUpdated) -> None:
        runtime = self._runtime
        outcome = record_update(
            update, repo=runtime.repo, clock=runtime.clock, policy=runtime.config.policy
        )
        if outcome.outcome is not UpdateOutcome.APPLIED:
            logger.info(
                "update of task %s %s: %s",
                update.task_id,
                outcome.outcome.value,
                outcome.detail or outcome.reason or "",
            )

    def status(self, task_id: str) -> TaskStatus | None:
        task = self._runtime.repo.get(task_id)
        return None if task is None else task.status


class _Context:
    """What a processor function sees: progress reports and whether it was cancelled."""

    def __init__(self, task_id: str, transport: LocalTransport, sequence: itertools.count[int]):
        self.task_id = task_id
        self._transport = transport
        self._sequence = sequence
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        if not self._cancelled:
            status = self._transport.status(self.task_id)
            self._cancelled = status is None or status.is_terminal
        return self._cancelled

    def progress(self, percent: float, message: str | None = None) -> None:
        if self.cancelled:
            return
        self._transport.send(
            TaskUpdated.model_validate(
                {
                    "task_id": self.task_id,
                    "status": TaskStatus.RUNNING,
                    "sequence": next(self._sequence),
                    "progress": {"percent": percent, "message": message},
                }
            )
        )


def _failure(exc: BaseException) -> TaskError:
    code = getattr(exc, "code", None)
    if not isinstance(code, str) or not _CODE.match(code):
        code = "PROCESSOR_ERROR"
    message = str(getattr(exc, "message", None) or exc) or type(exc).__name__
    return TaskError.model_validate({"code": code, "message": message[:4000]})


def run_function(
    fn: Callable[[Any, Any], Any], event: TaskCreated, transport: LocalTransport
) -> None:
    """RUNNING, the function's progress, then SUCCESSFUL with its result or FAILED."""
    status = transport.status(event.id)
    if status is None or status.is_terminal:
        return
    sequence = itertools.count(1)
    transport.send(
        TaskUpdated(task_id=event.id, status=TaskStatus.RUNNING, sequence=next(sequence))
    )
    ctx = _Context(event.id, transport, sequence)
    try:
        result = fn(event.input, ctx)
    except Exception as exc:
        update = TaskUpdated(
            task_id=event.id, status=TaskStatus.FAILED, sequence=next(sequence), error=_failure(exc)
        )
    else:
        try:
            update = TaskUpdated(
                task_id=event.id,
                status=TaskStatus.SUCCESSFUL,
                sequence=next(sequence),
                result=result,
            )
        except ValidationError as exc:
            error = TaskError(code="INVALID_RESULT", message=str(exc)[:4000])
            update = TaskUpdated(
                task_id=event.id, status=TaskStatus.FAILED, sequence=next(sequence), error=error
            )
    if ctx.cancelled:
        return
    transport.send(update)


def function_job(fn: Callable[[Any, Any], Any], transport: LocalTransport) -> Job:
    return lambda event: run_function(fn, event, transport)


def load_object(spec: str) -> Any:
    """``package.module:attribute`` -> the object it names."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"{spec!r} is not MODULE:ATTRIBUTE")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target
