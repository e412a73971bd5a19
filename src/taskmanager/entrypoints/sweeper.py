"""The scheduled sweeper: fails open tasks past their deadline (``TIMEOUT``), quiet past
their heartbeat (``HEARTBEAT_TIMEOUT``) or still CREATED past their start timeout
(``START_TIMEOUT``). Each failure is one guarded write pinned to the version read, so an
update arriving meanwhile wins; the stream publishes the ``TaskFailed``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Final

from taskmanager.domain.model import ErrorCode
from taskmanager.domain.services import expire_overdue
from taskmanager.entrypoints import observability as obs

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from taskmanager.entrypoints.bootstrap import Dependencies

#: Stop starting new rounds when less than this much of the invocation is left (ms).
_RESERVE_MS: Final = 10_000
#: Rounds of ``limit`` tasks per invocation at most (the next schedule picks up the rest).
MAX_ROUNDS: Final = 20
#: What the handler returns and counts for each code the sweeper writes: (key, metric).
_COUNTED: Final = {
    ErrorCode.TIMEOUT: ("timed_out", obs.TASKS_TIMED_OUT),
    ErrorCode.HEARTBEAT_TIMEOUT: ("heartbeat_timed_out", obs.TASKS_HEARTBEAT_TIMED_OUT),
    ErrorCode.START_TIMEOUT: ("start_timed_out", obs.TASKS_START_TIMED_OUT),
}


def create_handler(
    deps_provider: Callable[[], Dependencies], *, limit: int = 500
) -> Callable[[Mapping[str, Any], Any], dict[str, int]]:
    """A sweeper over ``deps_provider()``'s repository, ``limit`` due tasks per round."""
    log = obs.logger()

    def handle(event: Mapping[str, Any], context: Any) -> dict[str, int]:
        deps = deps_provider()
        counts = dict.fromkeys((key for key, _ in _COUNTED.values()), 0)
        for _ in range(MAX_ROUNDS):
            expired = expire_overdue(
                repo=deps.repo, clock=deps.clock, policy=deps.policy, limit=limit
            )
            for task in expired:
                code = task.error.code if task.error else ErrorCode.TIMEOUT
                counts[_COUNTED[ErrorCode(code)][0]] += 1
                log.info("task failed by the sweeper", extra={"task_id": task.id, "code": code})
            remaining = getattr(context, "get_remaining_time_in_millis", None)
            if len(expired) < limit or (remaining is not None and remaining() < _RESERVE_MS):
                break
        for key, metric in _COUNTED.values():
            obs.count(metric, counts[key])
        return counts

    return handle


def _correlation(event: Mapping[str, Any]) -> str | None:
    event_id = event.get("id")
    return str(event_id) if event_id else None


@functools.cache
def _lambda_handler() -> Callable[[Any, Any], Any]:
    from taskmanager.entrypoints import bootstrap  # noqa: PLC0415

    limit = bootstrap.settings().sweep_limit
    return obs.instrument(create_handler(bootstrap.aws_dependencies, limit=limit), _correlation)


def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    """The sweeper Lambda: an EventBridge Scheduler / scheduled rule event."""
    result: dict[str, int] = _lambda_handler()(event, context)
    return result
