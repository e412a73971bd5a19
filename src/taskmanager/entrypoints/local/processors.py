"""Processors inside `taskmanager serve`: which ones run, and how they report.

Each is a :class:`taskmanager.processor.Processor`, the same object that runs as a Lambda
function in AWS. Here its transport is the SDK's ``DirectTransport``: every update goes
through ``record_update`` (the use case the updates Lambda calls), so duplicates, stale and
illegal updates are classified exactly alike, and the status read that tells a processor
its task was cancelled comes from the same store.
"""

from __future__ import annotations

import importlib
import traceback
from typing import TYPE_CHECKING, Any

from taskmanager.entrypoints.local.demo import DEMO_FUNCTIONS
from taskmanager.processor import DirectTransport, Processor

if TYPE_CHECKING:
    from taskmanager.domain.events import TaskCreated
    from taskmanager.entrypoints.local.runtime import Job, LocalRuntime


class ProcessorLoadError(Exception):
    """A ``--processor`` that names no processor; the message says which one and why."""


def load_object(spec: str) -> Any:
    """``package.module:attribute`` -> the object it names; :class:`ProcessorLoadError`
    (one line) if it names nothing."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        hint = (
            "the demo processors are always on, no --processor needed"
            if spec in DEMO_FUNCTIONS
            else "expected MODULE:ATTR, e.g. wordcount_processor:processor"
        )
        raise ProcessorLoadError(f"--processor {spec}: {hint}")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:
        # The module's own failure (a missing dependency, a syntax error): one line with
        # where it happened is enough to find it.
        raise ProcessorLoadError(
            f"--processor {spec}: cannot import {module_name}: {_one_line(exc)}"
        ) from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ProcessorLoadError(
                f"--processor {spec}: {module_name} has no attribute {attribute}"
            ) from None
    return target


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".splitlines()[0]
    frames = traceback.extract_tb(exc.__traceback__)
    if frames and not isinstance(exc, SyntaxError | ModuleNotFoundError):
        text += f" ({frames[-1].filename}, line {frames[-1].lineno})"
    return text


def load_processors(specs: tuple[str, ...]) -> list[Processor]:
    """The demo processors, then each ``MODULE:ATTR`` given (a ``Processor``, or a list of
    them). A later processor of the same task type replaces an earlier one."""
    processors = [Processor(task_type, fn) for task_type, fn in DEMO_FUNCTIONS.items()]
    processors.extend(load_given(specs))
    return list({p.task_type: p for p in processors}.values())


def load_given(specs: tuple[str, ...]) -> list[Processor]:
    """The processors each ``MODULE:ATTR`` names (a ``Processor``, or a list of them)."""
    processors: list[Processor] = []
    for spec in specs:
        target = load_object(spec)
        found = list(target) if isinstance(target, list | tuple) else [target]
        for item in found:
            if not isinstance(item, Processor):
                raise ProcessorLoadError(
                    f"--processor {spec}: names {item!r}, not a taskmanager.processor.Processor"
                )
        processors.extend(found)
    return processors


def job_for(processor: Processor, runtime: LocalRuntime) -> Job:
    """Run ``processor`` on a delivered ``TaskCreated``, reporting to ``runtime``'s store."""
    transport = DirectTransport(runtime.repo, runtime.clock, runtime.config.policy)

    def run(event: TaskCreated) -> None:
        processor.handle(event, transport)

    return run
