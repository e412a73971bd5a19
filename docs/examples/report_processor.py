"""Writing a processor: a function, wrapped in ``Processor``, run on in-memory adapters.

Run it: ``python docs/examples/report_processor.py``. A test runs it too
(tests/unit/test_docs_api_and_processors.py). In AWS the same ``processor`` object is the
Lambda handler ``report_processor.handler``; inside ``taskmanager serve`` it is passed with
``--processor report_processor:processor``.
"""

from __future__ import annotations

from typing import Any

from taskmanager.adapters.memory import InMemoryTaskRepository, SystemClock, UuidIdFactory
from taskmanager.domain.events import TaskCreated, event_for
from taskmanager.domain.model import SubmitTask
from taskmanager.domain.services import cancel_task, get_task, submit_task
from taskmanager.processor import DirectTransport, Processor, ProcessorContext, ProcessorError


class OutOfPaperError(Exception):
    """Any exception with a ``code`` attribute fails the task with that code."""

    code = "OUT_OF_PAPER"


def render(task_input: Any, ctx: ProcessorContext) -> dict[str, int]:
    """Render ``rows`` rows, 10 to a page, reporting progress after each page."""
    rows = task_input.get("rows") if isinstance(task_input, dict) else None
    if not isinstance(rows, int) or rows < 1:
        raise ProcessorError("INVALID_INPUT", 'input must be {"rows": <positive int>}')
    if rows > 1000:
        raise OutOfPaperError(f"{rows} rows would need {rows // 10} pages")
    pages = (rows + 9) // 10
    for page in range(1, pages + 1):
        if ctx.cancelled:  # cancelled or timed out meanwhile: stop, nothing more is reported
            return {"pages": page - 1}
        ctx.progress(100 * page / pages, f"page {page} of {pages}")
    return {"pages": pages}


processor = Processor("report.render", render)
handler = processor.lambda_handler  # the Lambda entry point in AWS


def main() -> None:
    repo, clock, ids = InMemoryTaskRepository(), SystemClock(), UuidIdFactory()
    transport = DirectTransport(repo, clock)  # in AWS: EventBridge PutEvents + DynamoDB GetItem

    def run(task_input: Any, *, cancel_first: bool = False) -> None:
        task = submit_task(
            SubmitTask(type="report.render", input=task_input),
            owner="docs",
            repo=repo,
            clock=clock,
            ids=ids,
        ).task
        if cancel_first:
            cancel_task(task.id, owner="docs", repo=repo, clock=clock)
        created = event_for(task)  # what the TaskCreated event carries
        assert isinstance(created, TaskCreated)
        outcome = processor.handle(created, transport)
        done = get_task(task.id, owner="docs", repo=repo, clock=clock)
        detail = done.result if done.error is None else done.error.model_dump()
        print(f"{task_input!s:<14} {outcome:<10} {done.status:<10} v{done.version} {detail}")

    run({"rows": 25})
    run({"rows": 0})
    run({"rows": 5000})
    run({"rows": 25}, cancel_first=True)


if __name__ == "__main__":
    main()
