"""A processor of your own for `taskmanager serve`:

    taskmanager serve --processor wordcount_processor:processor

(run it from this folder, or put the folder on PYTHONPATH). The same object runs in AWS as
a Lambda function: point the function's handler at ``wordcount_processor.handler``.
"""

from __future__ import annotations

from typing import Any

from taskmanager.processor import Processor, ProcessorContext, ProcessorError


def count_words(task_input: Any, ctx: ProcessorContext) -> dict[str, int]:
    if not isinstance(task_input, dict) or not isinstance(task_input.get("text"), str):
        raise ProcessorError("INVALID_INPUT", 'input must be {"text": "..."}')
    lines = task_input["text"].splitlines() or [""]
    words = 0
    for number, line in enumerate(lines, start=1):
        words += len(line.split())
        ctx.progress(100 * number / len(lines), f"line {number}/{len(lines)}")
    return {"lines": len(lines), "words": words}


processor = Processor("text.wordcount", count_words)
handler = processor.lambda_handler
