"""Processors inside `taskmanager serve`: which ones run, and how they report.

Each is a :class:`taskmanager.processor.Processor`, the same object that runs as a Lambda
function in AWS. Here its transport is the SDK's ``DirectTransport``: every update goes
through ``record_update`` (the use case the updates Lambda calls), so duplicates, stale and
illegal updates are classified exactly alike, and the status read that tells a processor
its task was cancelled comes from the same store.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from taskmanager.entrypoints.local.demo import DEMO_FUNCTIONS
from taskmanager.processor import DirectTransport, Processor

if TYPE_CHECKING:
    from taskmanager.domain.events import TaskCreated
    from taskmanager.entrypoints.local.runtime import Job, LocalRuntime


def load_object(spec: str) -> Any:
    """``package.module:attribute`` -> the object it names."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"{spec!r} is not MODULE:ATTR")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


def load_processors(specs: tuple[str, ...]) -> list[Processor]:
    """The demo processors, then each ``MODULE:ATTR`` given (a ``Processor``, or a list of
    them). A later processor of the same task type replaces an earlier one."""
    processors = [Processor(task_type, fn) for task_type, fn in DEMO_FUNCTIONS.items()]
    for spec in specs:
        target = load_object(spec)
        found = list(target) if isinstance(target, list | tuple) else [target]
        for item in found:
            if not isinstance(item, Processor):
                raise TypeError(f"{spec} names {item!r}, not a taskmanager.processor.Processor")
        processors.extend(found)
    return list({p.task_type: p for p in processors}.values())


def job_for(processor: Processor, runtime: LocalRuntime) -> Job:
    """Run ``processor`` on a delivered ``TaskCreated``, reporting to ``runtime``'s store."""
    transport = DirectTransport(runtime.repo, runtime.clock, runtime.config.policy)

    def run(event: TaskCreated) -> None:
        processor.handle(event, transport)

    return run
