"""Logs, metrics and traces of the Lambda handlers, on Powertools, in one place.

- Logs: JSON lines from Powertools' ``Logger`` (service from ``POWERTOOLS_SERVICE_NAME``),
  each with the Lambda context, a ``correlation_id`` (the API request id, the SQS message id,
  the stream record id) and the ``task_id`` being worked on.
- Metrics: CloudWatch EMF from Powertools' ``Metrics`` (namespace from
  ``POWERTOOLS_METRICS_NAMESPACE``, default ``taskmanager``), flushed after each invocation.
- Traces: X-Ray through Powertools' ``Tracer`` only when ``TASKMANAGER_TRACING`` is ``true``
  (set by Terraform with active tracing). Otherwise ``aws_xray_sdk`` is never imported, which
  keeps it out of every cold start.

Everything is built on the first invocation and cached for the life of the process.

Also the end of a handler's initialisation: :func:`instrument` moves every object alive when
the handler is first invoked into the garbage collector's permanent generation
(``gc.freeze``); see there.
"""

from __future__ import annotations

import functools
import gc
import os
import re
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager

    from aws_lambda_powertools import Logger, Metrics, Tracer

#: The lowest Powertools release the handlers work with (pyproject's floor, proved in CI by
#: ``make test-min``): the API's routes pass ``status_code=`` to ``route()``, first in 3.28.
MIN_POWERTOOLS: Final = (3, 28, 0)

DEFAULT_NAMESPACE: Final = "taskmanager"
DEFAULT_SERVICE: Final = "taskmanager"

# Metric names (CloudWatch, unit Count).
TASKS_SUBMITTED: Final = "TasksSubmitted"
UPDATES_APPLIED: Final = "UpdatesApplied"
UPDATES_DUPLICATE: Final = "UpdatesDuplicate"
UPDATES_STALE: Final = "UpdatesStale"
UPDATES_REJECTED: Final = "UpdatesRejected"
UPDATES_MALFORMED: Final = "UpdatesMalformed"
EVENTS_PUBLISHED: Final = "EventsPublished"
PUBLISH_FAILURES: Final = "PublishFailures"
TASKS_TIMED_OUT: Final = "TasksTimedOut"
TASKS_HEARTBEAT_TIMED_OUT: Final = "TasksHeartbeatTimedOut"
TASKS_START_TIMED_OUT: Final = "TasksStartTimedOut"
PUSH_SENT: Final = "PushMessagesSent"
PUSH_GONE: Final = "PushConnectionsGone"
PUSH_MALFORMED: Final = "PushMessagesMalformed"


class PowertoolsTooOldError(RuntimeError):
    """The Powertools found (a layer, the runtime's packages) is older than the handlers need."""


def require_powertools(found: str | None = None) -> None:
    """Refuse to start on a Powertools older than :data:`MIN_POWERTOOLS`, with a message that
    names the fix, instead of failing later inside a request with an ``AttributeError``.

    ``found`` defaults to the installed version (the layer's, on Lambda)."""
    if found is None:
        found = installed_powertools()
    if _release(found) < MIN_POWERTOOLS:
        floor = ".".join(map(str, MIN_POWERTOOLS))
        raise PowertoolsTooOldError(
            f"taskmanager needs aws-lambda-powertools >= {floor}, found {found}: use the "
            f"Powertools layer of version {floor} or later (docs/deploy.md, "
            '"Before your first apply")'
        )


def installed_powertools() -> str:
    """The Powertools release this process runs (the layer's, on Lambda). Read from the
    package's own version module, which importing Powertools has already loaded:
    ``importlib.metadata`` would cost a cold start tens of milliseconds to find it."""
    from aws_lambda_powertools.shared.version import VERSION  # noqa: PLC0415

    return VERSION


def _release(version: str) -> tuple[int, int, int]:
    """``"3.28.0"`` -> ``(3, 28, 0)``; a pre-release or local suffix is ignored."""
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    if match is None:
        return (0, 0, 0)
    major, minor, patch = match.groups(default="0")
    return (int(major), int(minor), int(patch))


def tracing_enabled() -> bool:
    return os.environ.get("TASKMANAGER_TRACING", "").strip().lower() in {"1", "true", "active"}


@functools.cache
def logger() -> Logger:
    from aws_lambda_powertools import Logger  # noqa: PLC0415 (built on first invocation)

    return Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE)


@functools.cache
def metrics() -> Metrics:
    from aws_lambda_powertools import Metrics  # noqa: PLC0415

    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE
    return Metrics(namespace=namespace)


@functools.cache
def tracer() -> Tracer | None:
    if not tracing_enabled():
        return None
    from aws_lambda_powertools import Tracer  # noqa: PLC0415 (imports aws_xray_sdk)

    return Tracer(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE)


def count(name: str, value: int = 1) -> None:
    """Add ``value`` to the metric ``name`` (unit Count) of this invocation."""
    if value:
        metrics().add_metric(name=name, unit="Count", value=value)


def instrument(
    handler: Callable[[Any, Any], Any], correlation_id: Callable[[Any], str | None]
) -> Callable[[Any, Any], Any]:
    """Wrap a Lambda handler: fresh log state with the Lambda context and correlation id,
    metrics flushed at the end (even when the handler raises), a trace if tracing is on.

    Called once per process, on the first invocation (the handlers build their wrapper
    lazily), so it also freezes what the process holds then: the imported modules, classes
    and functions live as long as the execution environment, and without ``gc.freeze`` every
    full collection of the cyclic garbage collector walks all of them again to free nothing.
    On a cold start one such collection comes during the first invocation (botocore parsing
    its data files while the first client is built allocates enough to set it off), and the
    first request waits for it (docs/performance.md). Frozen, collections walk only what was
    created since; those objects are collected as usual."""
    require_powertools()
    gc.freeze()
    log = logger()
    traced = tracer()
    inner = traced.capture_lambda_handler(handler) if traced is not None else handler

    def wrapped(event: Any, context: Any) -> Any:
        log.clear_state()
        if context is not None and hasattr(context, "aws_request_id"):
            log.append_keys(
                function_request_id=context.aws_request_id,
                function_name=getattr(context, "function_name", None),
            )
        log.set_correlation_id(_safe(correlation_id, event))
        try:
            return inner(event, context)
        finally:
            flush()

    return wrapped


# --- what ``instrument`` logs as the correlation id of an event -----------------------------


def request_id(event: Any) -> str | None:
    """An API Gateway request's id (HTTP and WebSocket APIs, the ``$connect`` authorizer)."""
    found = event["requestContext"]["requestId"]
    return str(found) if found else None


def first_record(key: str) -> Callable[[Any], str | None]:
    """The ``key`` of a batch's first record (SQS: ``messageId``; streams: ``eventID``)."""

    def read(event: Any) -> str | None:
        records = event.get("Records") or []
        return str(records[0][key]) if records else None

    return read


def flush() -> None:
    """Emit this invocation's metrics (nothing when there are none; Powertools' Metrics is
    not even imported until a first metric is counted)."""
    if metrics.cache_info().currsize and metrics().metric_set:
        metrics().flush_metrics()


def _safe(read: Callable[[Any], str | None], event: Any) -> str | None:
    try:
        return read(event)
    except (AttributeError, KeyError, TypeError, IndexError):
        return None


def task_keys(task_id: str | None) -> AbstractContextManager[None]:
    """Context manager: log lines inside carry ``task_id``."""
    return logger().append_context_keys(task_id=task_id)
