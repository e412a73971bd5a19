"""Hands every delivered event to the live streams (server-sent events) and the WebSocket
connections (``/ws``) that watch it.

The bus calls :meth:`ChangeHub.deliver` on the dispatcher thread; each watcher belongs to
one asyncio loop and receives the event through ``call_soon_threadsafe``. A watcher
watches one task, or every task (``task_id=None``, the web page's single stream). The
watchers of one WebSocket connection share its queue; a connection that watches nothing yet
still hears of the shutdown through :meth:`ChangeHub.on_close`.
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
        #: Told of the shutdown only (a WebSocket connection, whatever it watches).
        self._listeners: set[Watcher] = set()

    def watch(
        self, task_id: str | None, queue: asyncio.Queue[OutboundEvent | None] | None = None
    ) -> Watcher:
        """Register before reading the task, so no change between the two is missed.
        ``queue``: the queue to put changes in (shared by a connection's watchers)."""
        loop = asyncio.get_running_loop()
        watcher = Watcher(task_id, loop) if queue is None else Watcher(task_id, loop, queue)
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

    def on_close(self, queue: asyncio.Queue[OutboundEvent | None]) -> Watcher:
        """``queue`` gets ``CLOSED`` when the server shuts down (at once if it has)."""
        watcher = Watcher(None, asyncio.get_running_loop(), queue)
        with self._lock:
            if self._closed:
                queue.put_nowait(CLOSED)
            else:
                self._listeners.add(watcher)
        return watcher

    def forget(self, listener: Watcher) -> None:
        with self._lock:
            self._listeners.discard(listener)

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
            queues = {id(w.queue) for w in targets}
            targets += [w for w in self._listeners if id(w.queue) not in queues]
        for watcher in targets:
            watcher.put(CLOSED)

    @property
    def watching(self) -> int:
        with self._lock:
            return sum(len(watchers) for watchers in self._by_task.values())
