"""A long job for a queue-fed worker: resumes where an earlier attempt stopped, and retries
what is worth retrying.

Run it as a worker (docs/processors.md, "On a queue, in a container"; a test runs both):

    taskmanager worker --processor export_processor:processor --concurrency 4
    python docs/examples/export_processor.py        # the same, from Python

Both read the queue from ``TASKMANAGER_QUEUE_URL`` and the task manager's table and bus from
``TASKMANAGER_TABLE_NAME``, ``TASKMANAGER_EVENT_BUS_NAME`` and
``TASKMANAGER_PROCESSOR_SOURCE``.
"""

from __future__ import annotations

import os
import time
from typing import Any

from taskmanager.processor import Processor, ProcessorContext, ProcessorError
from taskmanager.retry import RetryPolicy


class UpstreamBusyError(Exception):
    """The system we export from asked us to come back later: worth a retry."""

    code = "UPSTREAM_BUSY"


def export(task_input: Any, ctx: ProcessorContext) -> dict[str, Any]:
    """Export ``batches`` batches, reporting progress after each one. A later attempt (the
    worker that ran it died or stopped) starts after the last batch reported."""
    batches = task_input.get("batches") if isinstance(task_input, dict) else None
    if not isinstance(batches, int) or not 1 <= batches <= 1000:
        raise ProcessorError("INVALID_INPUT", 'input must be {"batches": 1 to 1000}')
    done = 0
    if ctx.previous_progress is not None:  # resume: these batches are exported already
        done = round(ctx.previous_progress.percent * batches / 100)
    for batch in range(done + 1, batches + 1):
        if ctx.cancelled:  # cancelled or timed out: stop; nothing more is reported
            return {"batches": batch - 1}
        time.sleep(0.05)  # the real work of one batch
        ctx.progress(100 * batch / batches, f"batch {batch} of {batches}")
    return {"batches": batches, "attempt": ctx.attempt, "resumed_after": done}


processor = Processor(
    "export.run",
    export,
    # Up to 4 calls; waits of at most 1, 2, 4 s (random: full jitter) between them.
    retry=RetryPolicy(attempts=4, backoff_seconds=1, retry_on=(UpstreamBusyError,)),
)

if __name__ == "__main__":
    raise SystemExit(processor.run_worker(os.environ["TASKMANAGER_QUEUE_URL"], concurrency=4))
