"""An example processor: counts the words of ``input["text"]``.

Deployed by ``examples/complete`` as the Lambda handler ``word_count.handler``; the same
``processor`` object runs inside ``taskmanager serve``.
"""

from __future__ import annotations

from typing import Any

from taskmanager.processor import Processor


def count_words(task_input: Any) -> dict[str, int]:
    text = task_input.get("text", "") if isinstance(task_input, dict) else ""
    return {"words": len(str(text).split())}


processor = Processor("example.word-count", count_words)
handler = processor.lambda_handler
