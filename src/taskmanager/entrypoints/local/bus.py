"""The in-process event bus of `taskmanager serve`: EventBridge's part on one machine.

Subscribers are chosen by detail-type and task type, like an EventBridge rule with a
target. A subscriber that raises makes ``publish`` name that event in a ``PublishError``,
so the outbox keeps it and delivers it again (at least once). Nothing is kept after
delivery, so a server that runs for weeks does not grow.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from taskmanager.domain.errors import PublishError
from taskmanager.domain.events import OutboundEvent

logger = logging.getLogger("taskmanager.local")

Handler = Callable[[OutboundEvent], None]


@dataclass(frozen=True, slots=True, eq=False)
class Subscription:
    handler: Handler
    detail_types: frozenset[str] | None
    task_types: frozenset[str] | None

    def matches(self, event: OutboundEvent) -> bool:
        return (self.detail_types is None or event.DETAIL_TYPE in self.detail_types) and (
            self.task_types is None or event.type in self.task_types
        )


class LocalBus:
    """An ``EventPublisher`` that hands each event to the matching subscribers in turn."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: tuple[Subscription, ...] = ()

    def subscribe(
        self,
        handler: Handler,
        *,
        detail_types: Sequence[str] | None = None,
        task_types: Sequence[str] | None = None,
    ) -> Subscription:
        sub = Subscription(
            handler,
            frozenset(detail_types) if detail_types is not None else None,
            frozenset(task_types) if task_types is not None else None,
        )
        with self._lock:
            self._subscriptions = (*self._subscriptions, sub)
        return sub

    def publish(self, events: Sequence[OutboundEvent]) -> None:
        subs = self._subscriptions
        failed: list[str] = []
        reasons: list[str] = []
        for event in events:
            for sub in subs:
                if not sub.matches(event):
                    continue
                try:
                    sub.handler(event)
                except Exception as exc:
                    logger.warning("delivery of %s failed: %r", event.event_id, exc)
                    failed.append(event.event_id)
                    reasons.append(f"{event.event_id}: {exc!r}")
                    break
        if failed:
            raise PublishError(failed, "; ".join(reasons))
