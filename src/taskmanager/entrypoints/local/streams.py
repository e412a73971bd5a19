"""The live streams of `taskmanager serve` (server-sent events): what API Gateway cannot
serve, so the local server serves it beside the API.

- ``GET /tasks/{id}/events``: the task as it is now, then every change, then the stream
  ends after the terminal one (a client that reconnects gets the current task first, so it
  loses nothing);
- ``GET /events``: every change of every task of the local owner (the web page's one
  stream; browsers allow only six connections per host).

Changes come from the runtime's change hub, which every delivered event reaches; a comment
line every ``keepalive_seconds`` keeps an idle stream open through proxies.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Final

from taskmanager.domain.errors import TaskManagerError
from taskmanager.domain.events import task_resource_json
from taskmanager.domain.push import task_resource_at as task_resource_from_event
from taskmanager.domain.services import get_task
from taskmanager.entrypoints.http_errors import error_response
from taskmanager.entrypoints.local.hub import CLOSED

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import Response

    from taskmanager.domain.events import OutboundEvent
    from taskmanager.entrypoints.local.asgi import Receive, Send
    from taskmanager.entrypoints.local.runtime import LocalRuntime

#: A comment line this often keeps idle streams open through proxies.
KEEPALIVE_SECONDS: Final = 15.0


class LiveStreams:
    """Serves one stream per call of :meth:`serve`, from the runtime's hub and store."""

    def __init__(
        self, runtime: LocalRuntime, *, keepalive_seconds: float = KEEPALIVE_SECONDS
    ) -> None:
        self.runtime = runtime
        self.keepalive_seconds = keepalive_seconds

    async def serve(
        self, task_id: str | None, receive: Receive, send: Send
    ) -> Response[str] | None:
        """Stream the changes of ``task_id`` (of every task: ``None``) until the task ends,
        the client goes away or the server shuts down. Returns the answer to send instead
        when the stream cannot start (the task is not the caller's to see)."""
        runtime = self.runtime
        watcher = runtime.hub.watch(task_id)
        try:
            input_value: Any = None
            last_version = 0
            first: bytes | None = None
            if task_id is not None:
                try:
                    task = get_task(
                        task_id, owner=runtime.config.owner, repo=runtime.repo, clock=runtime.clock
                    )
                except TaskManagerError as exc:
                    return error_response(exc)
                input_value, last_version = task.input, task.version
                first = _sse("task", task_resource_json(task), task.version)
                if task.is_terminal:
                    await _start_stream(send)
                    await send({"type": "http.response.body", "body": first})
                    return None
            await _start_stream(send)
            await send(
                {
                    "type": "http.response.body",
                    "body": first or b": connected\n\n",
                    "more_body": True,
                }
            )
            await self._follow(watcher.queue, receive, send, task_id, (input_value, last_version))
            return None
        finally:
            runtime.hub.unwatch(watcher)

    async def _follow(
        self,
        changes: asyncio.Queue[OutboundEvent | None],
        receive: Receive,
        send: Send,
        task_id: str | None,
        snapshot: tuple[Any, int],
    ) -> None:
        """Send each change after the snapshot's version; end after a terminal one."""
        input_value, last_version = snapshot
        disconnected = asyncio.ensure_future(_wait_disconnect(receive))
        try:
            while True:
                next_change = asyncio.ensure_future(changes.get())
                done, _ = await asyncio.wait(
                    {next_change, disconnected},
                    timeout=self.keepalive_seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if disconnected in done:
                    next_change.cancel()
                    return
                if next_change not in done:
                    next_change.cancel()
                    await send(
                        {
                            "type": "http.response.body",
                            "body": b": keepalive\n\n",
                            "more_body": True,
                        }
                    )
                    continue
                event = next_change.result()
                if event is CLOSED:
                    break
                if task_id is not None:
                    if event.version <= last_version:  # a redelivery, or older than the snapshot
                        continue
                    last_version = event.version
                elif not await self._owned(event.id):
                    continue
                resource = task_resource_from_event(event, input_value)
                chunk = _sse(event.DETAIL_TYPE, resource.model_dump_json(), event.version)
                terminal = task_id is not None and event.status.is_terminal
                await send({"type": "http.response.body", "body": chunk, "more_body": not terminal})
                if terminal:
                    return
            await send({"type": "http.response.body", "body": b""})
        finally:
            disconnected.cancel()

    async def _owned(self, task_id: str) -> bool:
        """The all-tasks stream carries only the local owner's tasks: the file may hold
        another owner's (a shared or embedded store), and their changes are not ours to see."""
        runtime = self.runtime
        task = await asyncio.to_thread(runtime.repo.get, task_id)
        return task is not None and task.owner == runtime.config.owner


def _sse(event_name: str, data: str, event_id: int | None = None) -> bytes:
    lines = [f"event: {event_name}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.extend(f"data: {line}" for line in data.splitlines() or [""])
    return ("\n".join(lines) + "\n\n").encode()


async def _start_stream(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no"),
            ],
        }
    )


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
