"""Hands every delivered event to the live streams (server-sent events) that watch it.

The bus calls :meth:`ChangeHub.deliver` on the dispatcher thread; each watcher belongs to
one asyncio loop and receives the event through ``call_soon_threadsafe``. A watcher
watches one task, or every task (``task_id=None``, the web page's single stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from taskmanager.domain.events import OutboundEvent

#: Put in a watcher's queue when the server shuts down: the stream ends.
CLOSED: Final = None


@dataclass(eq=False)
class Watcher:
    task_id: str | None
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[OutboundEvent | None] = field(default_factory=asyncio.Queue)

    def put(self, item: OutboundEvent | None) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: its stream is gone anyway
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)


class ChangeHub:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_task: dict[str | None, set[Watcher]] = {}
        self._closed = False

    def watch(self, task_id: str | None) -> Watcher:
        """Register before reading the task, so no change between the two is missed."""
        watcher = Watcher(task_id, asyncio.get_running_loop())
        with self._lock:
            if self._closed:
                watcher.queue.put_nowait(CLOSED)
            else:
                self._by_task.setdefault(task_id, set()).add(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        with self._lock:
            watchers = self._by_task.get(watcher.task_id)
            if watchers is not None:
                watchers.discard(watcher)
                if not watchers:
                    del self._by_task[watcher.task_id]

    def deliver(self, event: OutboundEvent) -> None:
        if not self._by_task:  # nobody watches (a watcher registers before it reads the task)
            return
        with self._lock:
            targets = [*self._by_task.get(event.id, ()), *self._by_task.get(None, ())]
        for watcher in targets:
            watcher.put(event)

    def close_all(self) -> None:
        with self._lock:
            self._closed = True
            targets = [w for watchers in self._by_task.values() for w in watchers]
        for watcher in targets:
            watcher.put(CLOSED)

    @property
    def watching(self) -> int:
        with self._lock:
            return sum(len(watchers) for watchers in self._by_task.values())
