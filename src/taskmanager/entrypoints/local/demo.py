"""Demo processors built into `taskmanager serve`, so a newcomer sees a whole lifecycle.

- ``demo.sleep``: input ``{"seconds": 5, "steps": 5}``; sleeps, reporting progress each
  step; stops early when the task is cancelled; returns what it did. A second attempt (the
  server restarted while it ran) resumes after the last step the earlier attempt reported.
- ``demo.echo``: returns its input unchanged (the fastest full lifecycle).
- ``demo.fail``: fails with the code and message given in its input (defaults below).

Each is a plain function ``(input, ctx) -> result`` wrapped in the processor SDK's
``Processor``, as any processor of yours would be.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any, Final

from taskmanager.processor import ProcessorError

if TYPE_CHECKING:
    from taskmanager.processor import ProcessorContext

MAX_SLEEP_SECONDS: Final = 3_600.0
MAX_STEPS: Final = 1_000
_CODE: Final = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


def _number(data: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ProcessorError("INVALID_INPUT", f"{key} must be a number from {low:g} to {high:g}")
    return float(value)


def sleep(task_input: Any, ctx: ProcessorContext) -> dict[str, Any]:
    data = task_input if isinstance(task_input, dict) else {}
    if task_input is not None and not isinstance(task_input, dict):
        raise ProcessorError(
            "INVALID_INPUT", 'input must be an object like {"seconds": 5, "steps": 5}'
        )
    seconds = _number(data, "seconds", 5, 0, MAX_SLEEP_SECONDS)
    steps = int(_number(data, "steps", 5, 1, MAX_STEPS))
    done = 0  # steps an earlier attempt reported: not slept again
    if ctx.previous_progress is not None:
        done = min(steps, int(ctx.previous_progress.percent * steps / 100 + 1e-9))
    started = time.monotonic()
    outcome: dict[str, Any] = {"attempt": ctx.attempt, "resumed_after": done}
    for step in range(done + 1, steps + 1):
        deadline = started + seconds * (step - done) / steps
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.25))
            if ctx.cancelled:
                return {"slept": round(time.monotonic() - started, 3), "steps": step - 1, **outcome}
        ctx.progress(100.0 * step / steps, f"step {step}/{steps}")
    return {"slept": round(time.monotonic() - started, 3), "steps": steps, **outcome}


def echo(task_input: Any, ctx: ProcessorContext) -> Any:
    return task_input


def fail(task_input: Any, ctx: ProcessorContext) -> Any:
    data = task_input if isinstance(task_input, dict) else {}
    code = data.get("code", "DEMO_FAILURE")
    message = data.get("message", "demo.fail always fails")
    if not isinstance(code, str) or not _CODE.match(code):
        code = "DEMO_FAILURE"
    raise ProcessorError(code, str(message))


#: task type -> function, registered by `taskmanager serve` beside the --processor ones.
DEMO_FUNCTIONS: Final = {"demo.sleep": sleep, "demo.echo": echo, "demo.fail": fail}
