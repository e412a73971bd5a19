"""The processors the worker tests run in a real `taskmanager worker` process
(``--processor tests.e2e.worker_processors:processors``).

Each function says in its result what it saw (attempt, previous progress), so that a test can
check from the task alone that a later attempt resumed from the earlier one's progress.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from taskmanager.processor import Processor, ProcessorContext, ProcessorError
from taskmanager.retry import RetryPolicy


def _steps(task_input: Any, ctx: ProcessorContext) -> dict[str, Any]:
    """``{"seconds": S, "steps": N}``: N steps of S/N seconds, progress after each; a later
    attempt skips the steps the earlier one reported."""
    steps = int(task_input["steps"])
    done = 0
    if ctx.previous_progress is not None:
        done = round(ctx.previous_progress.percent * steps / 100)
    for step in range(done + 1, steps + 1):
        time.sleep(task_input["seconds"] / steps)
        ctx.progress(100.0 * step / steps, f"step {step}/{steps}")
    return {"attempt": ctx.attempt, "resumed_after": done, "steps": steps}


def _until_cancelled(task_input: Any, ctx: ProcessorContext) -> str:
    """Works (never reporting, never reading the status itself more than ``ctx.cancelled``
    does) until the cancel reaches it; writes the moment it saw it to ``input["marker"]``."""
    ctx.progress(1, "waiting for the cancel")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if ctx.cancelled:
            Path(task_input["marker"]).write_text(repr(time.time()))
            return "stopped"
        time.sleep(0.05)
    return "never cancelled"


def _quiet(task_input: Any) -> str:
    """Never reports anything itself: only the worker's heartbeats keep it alive."""
    time.sleep(task_input["seconds"])
    return "done"


def _flaky(task_input: Any, ctx: ProcessorContext) -> dict[str, Any]:
    """Fails with ``THROTTLED`` on its first ``input["failures"]`` tries."""
    ctx.progress(10, "started")
    if ctx.retries < task_input["failures"]:
        raise ProcessorError("THROTTLED", f"try {ctx.retries + 1} throttled")
    previous = ctx.previous_progress
    return {"retries": ctx.retries, "resumed_at": previous and previous.percent}


def _broken(task_input: Any) -> None:
    raise ProcessorError("BAD_INPUT", "not retryable")


RETRY = RetryPolicy(attempts=3, backoff_seconds=0.05, retry_codes=frozenset({"THROTTLED"}))

processors = [
    Processor("w.steps", _steps),
    Processor("w.cancel", _until_cancelled),
    Processor("w.quiet", _quiet),
    Processor("w.flaky", _flaky, retry=RETRY),
    Processor("w.broken", _broken, retry=RETRY),
]
TASK_TYPES = [p.task_type for p in processors]
