"""``/ws`` of `taskmanager serve`: the push protocol (docs/push.md) over one WebSocket.

The protocol itself (parsing, answering) is the domain's (:mod:`taskmanager.domain.push`),
the same as on AWS; this module is its transport on one machine: a connection's
subscriptions are watchers of the runtime's change hub (the one the server-sent event
streams read), sharing the connection's queue. One coroutine per connection reads the
client's messages and the queued changes in turn, so each connection sends one message at
a time, in order.

A change reaches the connection as an outbound event, which omits the task's ``input``: it
is taken from what the connection read of the task (the catch-up of a subscription, the
answer to a submit), or read from the store once for a task seen first through a
subscription to every task, which also checks that the task is the caller's.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Final

from taskmanager.domain.errors import StorageError, TaskManagerError
from taskmanager.domain.push import (
    Accepted,
    Submit,
    TaskMessage,
    answer,
    error_message,
    parse_client_message,
    request_id_of,
)
from taskmanager.domain.push import task_resource_at as task_resource_from_event
from taskmanager.entrypoints.http_errors import internal_error
from taskmanager.entrypoints.local.hub import CLOSED

if TYPE_CHECKING:
    from collections.abc import Callable

    from taskmanager.domain.events import OutboundEvent
    from taskmanager.entrypoints.local.asgi import Receive, Send
    from taskmanager.entrypoints.local.hub import Watcher
    from taskmanager.entrypoints.local.runtime import LocalRuntime

logger = logging.getLogger("taskmanager.local")

#: Close codes (RFC 6455): the server is going away; a frame that is not text.
GOING_AWAY: Final = 1001
#: Tasks a connection remembers (input, ownership) for its subscription to every task; past
#: this the memory starts again (a task then costs one more read).
_KNOWN_MAX: Final = 10_000
#: Stands for "not the caller's task" among the remembered inputs.
_FOREIGN: Final = object()


class _Connection:
    """One client's subscriptions: the hub's watchers, on the connection's queue."""

    def __init__(self, runtime: LocalRuntime) -> None:
        self.runtime = runtime
        self.queue: asyncio.Queue[OutboundEvent | None] = asyncio.Queue()
        self.watchers: dict[str | None, Watcher] = {}
        #: The highest version sent of each task: older or repeated changes are dropped.
        self.versions: dict[str, int] = {}
        #: Each known task's input (or ``_FOREIGN``): events do not carry it.
        self.known: dict[str, Any] = {}

    # the domain's Subscriptions port
    def subscribe(self, task_id: str | None) -> None:
        if task_id not in self.watchers:
            self.watchers[task_id] = self.runtime.hub.watch(task_id, self.queue)

    def unsubscribe(self, task_id: str | None) -> None:
        if task_id is None:  # every subscription of the connection
            for watcher in self.watchers.values():
                self.runtime.hub.unwatch(watcher)
            self.watchers.clear()
            return
        if task_id in self.watchers:
            self.runtime.hub.unwatch(self.watchers.pop(task_id))

    def remember(self, task_id: str, input_value: Any, version: int | None = None) -> None:
        if len(self.known) >= _KNOWN_MAX:  # forgotten tasks cost one read each, once more
            self.known.clear()
            self.versions.clear()
        self.known[task_id] = input_value
        if version is not None:
            self.versions[task_id] = max(version, self.versions.get(task_id, 0))


class PushSockets:
    """Serves ``/ws``: one call of :meth:`serve` per connection."""

    def __init__(
        self,
        runtime: LocalRuntime,
        join_batch: Callable[[bool], asyncio.Future[None] | None] = lambda _write: None,
    ) -> None:
        self.runtime = runtime
        #: The server's group commit (``LocalApp``): ``join_batch(write)`` is the open batch
        #: (opened for a write), done once committed. A read waits for it first (it must not
        #: read an uncommitted write); a submit is answered after it, as ``POST /tasks`` is.
        self.join_batch = join_batch

    async def serve(self, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        connection = _Connection(self.runtime)
        listener = self.runtime.hub.on_close(connection.queue)
        incoming = asyncio.ensure_future(receive())
        try:
            while True:
                change = asyncio.ensure_future(connection.queue.get())
                done, _ = await asyncio.wait(
                    {incoming, change}, return_when=asyncio.FIRST_COMPLETED
                )
                if change in done:
                    event = change.result()
                    if event is CLOSED:
                        await send(
                            {"type": "websocket.close", "code": GOING_AWAY, "reason": "shutdown"}
                        )
                        return
                    await self._send_change(connection, event, send)
                else:
                    change.cancel()
                if incoming in done:
                    message = incoming.result()
                    if message["type"] == "websocket.disconnect":
                        return
                    raw = message.get("text")
                    if raw is None:
                        raw = message.get("bytes") or b""
                    await send(
                        {"type": "websocket.send", "text": await self._answer(connection, raw)}
                    )
                    incoming = asyncio.ensure_future(receive())
        finally:
            incoming.cancel()
            connection.unsubscribe(None)
            self.runtime.hub.forget(listener)

    async def _answer(self, connection: _Connection, raw: str | bytes) -> str:
        """The JSON text of the answer to one client message."""
        try:
            message = parse_client_message(raw)
        except TaskManagerError as exc:
            return error_message(exc, request_id_of(raw)).model_dump_json()
        batch = self.join_batch(isinstance(message, Submit))
        if batch is not None and not isinstance(message, Submit):
            await asyncio.wait({batch})
            batch = None
        runtime = self.runtime
        try:
            reply = answer(
                message, owner=runtime.config.owner, subscriptions=connection, deps=runtime.deps()
            ).message
        except Exception as exc:  # a bug, or the store failing: say so, keep the socket
            reply = error_message(
                internal_error(exc, "the server failed; see its log"), message.request_id
            )
        if batch is not None:
            try:
                await batch
            except StorageError as exc:
                reply = error_message(exc, message.request_id)
        if isinstance(reply, Accepted | TaskMessage):
            task = reply.task
            connection.remember(task.id, task.input, task.version)
        return reply.model_dump_json()

    async def _send_change(self, connection: _Connection, event: OutboundEvent, send: Send) -> None:
        if event.version <= connection.versions.get(event.id, 0):
            return  # a redelivery, or older than what the connection was sent
        known = connection.known.get(event.id, _FOREIGN)
        if event.id not in connection.known:
            try:
                stored = await asyncio.to_thread(self.runtime.repo.get, event.id)
            except StorageError:
                logger.exception("push: cannot read task %s; its change is not sent", event.id)
                return
            mine = stored is not None and stored.owner == self.runtime.config.owner
            known = stored.input if stored is not None and mine else _FOREIGN
            connection.remember(event.id, known)
        if known is _FOREIGN:  # another owner's task in a shared store: not ours to see
            return
        connection.versions[event.id] = event.version
        resource = task_resource_from_event(event, known)
        text = TaskMessage(task=resource).model_dump_json()  # no size limit on one machine
        await send({"type": "websocket.send", "text": text})
        if event.status.is_terminal and event.id in connection.watchers:
            connection.unsubscribe(event.id)  # nothing more will come


__all__ = ["GOING_AWAY", "PushSockets"]
