"""The client SDK: submit, get, list, cancel, wait for and watch tasks over the HTTP API,
and over the push protocol's WebSocket where one is configured (docs/push.md).

    client = TaskClient("https://abc123.execute-api.eu-west-1.amazonaws.com",
                        auth=SigV4Auth(region="eu-west-1"),
                        websocket_url="wss://def456.execute-api.eu-west-1.amazonaws.com/live")
    task = client.submit("report.render", {"rows": 10}, idempotency_key="order-42")
    done = client.wait(task.id, timeout=600, on_progress=lambda t: print(t.progress))

Standard library HTTP (``urllib``); botocore only for SigV4 signing; the ``websockets``
library only for ``watch``/``wait`` over a socket. Errors mirror the API's error body:
:class:`ApiError` carries ``status``, ``code``, ``message`` and ``details``, with one
subclass per code the API documents.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import TYPE_CHECKING, Any, ClassVar, Final

from pydantic import BaseModel, ConfigDict, ValidationError

# The request signers (taskmanager.auth), re-exported: `from taskmanager.client import ...`.
from taskmanager.auth import Auth as Auth  # noqa: PLC0414, TC001
from taskmanager.auth import BearerAuth as BearerAuth  # noqa: PLC0414
from taskmanager.auth import SigV4Auth as SigV4Auth  # noqa: PLC0414
from taskmanager.domain.events import TaskResource
from taskmanager.domain.push import (
    SERVER_MESSAGE_ADAPTER,
    ErrorMessage,
    Subscribe,
    TaskMessage,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

_TERMINAL: Final = frozenset({"SUCCESSFUL", "FAILED"})
#: HTTP statuses worth retrying for a request that is safe to repeat.
_RETRYABLE: Final = frozenset({429, 502, 503, 504})


class TaskPage(BaseModel):
    model_config = ConfigDict(frozen=True)

    items: list[TaskResource]
    next_cursor: str | None = None


# --- errors ---------------------------------------------------------------------------------


class ApiError(Exception):
    """An error response of the API: ``{"error": {"code", "message", "details"}}``."""

    code: ClassVar[str] = "API_ERROR"

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code  # type: ignore[misc]  # the code the server sent
        self.message = message
        self.details = details

    @property
    def summary(self) -> str:
        """The message with what its details add: each invalid field and the rule it broke
        (``limit: Input should be less than or equal to 100``), or the details' values the
        message does not already say (``size=300000, limit=262144``)."""
        extra = _describe_details(self.details, self.message)
        return f"{self.message}: {extra}" if extra else self.message


class InvalidRequestError(ApiError):
    code = "INVALID_REQUEST"


class UnknownTaskTypeError(InvalidRequestError):
    """No processor of the deployment takes the task type; ``details["known_types"]``."""

    code = "UNKNOWN_TASK_TYPE"


class PayloadTooLargeError(ApiError):
    code = "PAYLOAD_TOO_LARGE"


class UnsupportedMediaTypeError(ApiError):
    code = "UNSUPPORTED_MEDIA_TYPE"


class UnauthenticatedError(ApiError):
    code = "UNAUTHENTICATED"


class TaskNotFoundError(ApiError):
    code = "TASK_NOT_FOUND"


class TaskAlreadyFinishedError(ApiError):
    code = "TASK_ALREADY_FINISHED"


class IdempotencyKeyReusedError(ApiError):
    code = "IDEMPOTENCY_KEY_REUSED"


class ServiceUnavailableError(ApiError):
    code = "STORAGE_UNAVAILABLE"


_ERRORS: Final[dict[str, type[ApiError]]] = {
    cls.code: cls
    for cls in (
        InvalidRequestError,
        UnknownTaskTypeError,
        PayloadTooLargeError,
        UnsupportedMediaTypeError,
        UnauthenticatedError,
        TaskNotFoundError,
        TaskAlreadyFinishedError,
        IdempotencyKeyReusedError,
        ServiceUnavailableError,
    )
}


class WaitTimeoutError(TimeoutError):
    """``wait`` gave up before the task finished; ``task`` is the last state seen."""

    def __init__(self, task: TaskResource, timeout: float) -> None:
        super().__init__(f"task {task.id} still {task.status} after {timeout} s")
        self.task = task


def _describe_details(details: Any, message: str) -> str:
    if isinstance(details, list):
        # The API's validation errors: [{"loc": ["query", "limit"], "msg": "..."}, ...]
        parts = []
        for item in details:
            if not isinstance(item, dict):
                parts.append(str(item))
                continue
            loc = [str(p) for p in item.get("loc") or () if p not in ("body", "query", "path")]
            rule = str(item.get("msg") or item.get("type") or "not valid")
            parts.append(f"{'.'.join(loc)}: {rule}" if loc else rule)
        return "; ".join(parts)
    if isinstance(details, dict):
        shown = {
            key: ", ".join(map(str, value)) if isinstance(value, list) else str(value)
            for key, value in details.items()
            if value is not None
        }
        return ", ".join(f"{key}={text}" for key, text in shown.items() if text not in message)
    return "" if details is None else str(details)


def error_from_response(status: int, body: bytes) -> ApiError:
    """The :class:`ApiError` (subclass) an error response of ``status`` and ``body`` means."""
    try:
        error = json.loads(body)["error"]
        code, message = str(error["code"]), str(error["message"])
        details = error.get("details")
    except (ValueError, KeyError, TypeError):
        # Not our error body (a gateway's own 403, a proxy's 502).
        text = body.decode("utf-8", "replace")[:500]
        code, message, details = f"HTTP_{status}", text or f"HTTP {status}", None
    return _ERRORS.get(code, ApiError)(status, code, message, details)


# --- the client -----------------------------------------------------------------------------


class Response:
    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def retry_after(self) -> float | None:
        """Seconds from ``Retry-After`` (delta-seconds form), if given."""
        value = self.headers.get("retry-after")
        try:
            return max(0.0, float(value)) if value is not None else None
        except ValueError:
            return None


class TaskClient:
    """A client of the task API at ``base_url``.

    ``auth``: None (the local server), :class:`SigV4Auth` (IAM) or :class:`BearerAuth` (JWT).
    Safe requests (reads, cancels, submits with an idempotency key) are retried on 429 and
    5xx gateway errors, up to ``retries`` times with exponential backoff that honours
    ``Retry-After``.

    ``websocket_url``: the push protocol's socket (``ws://127.0.0.1:8000/ws`` locally, the
    deployment's ``websocket_url`` output on AWS): :meth:`watch` and :meth:`wait` use it,
    and poll without it."""

    def __init__(
        self,
        base_url: str,
        auth: Auth | None = None,
        *,
        websocket_url: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.websocket_url = websocket_url
        self.auth = auth
        self.timeout = timeout
        self.retries = retries
        self._sleep = sleep
        self._clock = clock

    # -- operations --
    def submit(
        self,
        type: str,
        input: Any = None,
        *,
        timeout_seconds: int | None = None,
        heartbeat_seconds: int | None = None,
        start_timeout_seconds: int | None = None,
        idempotency_key: str | None = None,
    ) -> TaskResource:
        """Submit a task; with ``idempotency_key`` a retry returns the same task."""
        body: dict[str, Any] = {"type": type, "input": input}
        if timeout_seconds is not None:
            body["timeout_seconds"] = timeout_seconds
        if heartbeat_seconds is not None:
            body["heartbeat_seconds"] = heartbeat_seconds
        if start_timeout_seconds is not None:
            body["start_timeout_seconds"] = start_timeout_seconds
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        response = self.request(
            "POST", "/tasks", body, headers=headers, retry=idempotency_key is not None
        )
        return TaskResource.model_validate_json(response.body)

    def get(self, task_id: str) -> TaskResource:
        return TaskResource.model_validate_json(self._get_response(task_id).body)

    def list(
        self,
        *,
        status: str | None = None,
        type: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> TaskPage:
        """One page of the caller's tasks, newest first."""
        query = {"status": status, "type": type, "limit": limit, "cursor": cursor}
        params = {k: str(v) for k, v in query.items() if v is not None}
        path = "/tasks" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        return TaskPage.model_validate_json(self.request("GET", path).body)

    def cancel(self, task_id: str) -> TaskResource:
        """Cancel an open task (it fails with ``CANCELLED``)."""
        response = self.request("POST", f"/tasks/{_quote(task_id)}/cancel")
        return TaskResource.model_validate_json(response.body)

    def wait(
        self,
        task_id: str,
        timeout: float | None = None,
        *,
        on_progress: Callable[[TaskResource], None] | None = None,
        initial_interval: float = 0.2,
        max_interval: float = 10.0,
    ) -> TaskResource:
        """Follow the task until it is SUCCESSFUL or FAILED and return it.

        With a ``websocket_url`` it is told of each change (:meth:`watch`); without, it
        polls, waiting at least the server's ``Retry-After`` between polls and backing off
        exponentially from ``initial_interval`` to ``max_interval``. ``on_progress`` is
        called with the task each time a new version shows while it is open. Raises
        :class:`WaitTimeoutError` after ``timeout`` seconds (None: no limit)."""
        last: TaskResource | None = None
        for task in self.watch(
            task_id,
            timeout=timeout,
            initial_interval=initial_interval,
            max_interval=max_interval,
        ):
            last = task
            if task.status in _TERMINAL:
                return task
            if on_progress is not None:
                on_progress(task)
        raise AssertionError(f"watch of {task_id} ended before the task did, at {last}")

    def watch(
        self,
        task_id: str,
        timeout: float | None = None,
        *,
        initial_interval: float = 0.2,
        max_interval: float = 10.0,
        reconnects: int = 5,
    ) -> Iterator[TaskResource]:
        """Each newer version of the task, the current one first, until its terminal one.

        Over the socket when a ``websocket_url`` is configured: it subscribes (the answer is
        the task as it is: catch-up), keeps the highest ``version`` seen and drops older
        messages, reads the task over HTTP when a message left fields out (``omitted``),
        and reconnects and subscribes again after a dropped connection (up to
        ``reconnects`` times in a row). Otherwise it polls as :meth:`wait` describes.
        Raises :class:`WaitTimeoutError` after ``timeout`` seconds (None: no limit), and the
        :class:`ApiError` of an ``error`` answer (``TASK_NOT_FOUND``; status 0)."""
        deadline = None if timeout is None else self._clock() + timeout
        if self.websocket_url is None:
            yield from self._poll(task_id, deadline, timeout, initial_interval, max_interval)
        else:
            yield from self._follow(task_id, deadline, timeout, reconnects)

    def _poll(
        self,
        task_id: str,
        deadline: float | None,
        timeout: float | None,
        interval: float,
        max_interval: float,
    ) -> Iterator[TaskResource]:
        seen_version = 0
        while True:
            response = self._get_response(task_id)
            task = TaskResource.model_validate_json(response.body)
            if task.version > seen_version:
                seen_version = task.version
                yield task
            if task.status in _TERMINAL:
                return
            delay = max(interval, response.retry_after or 0.0)
            interval = min(interval * 2, max_interval)
            if deadline is not None:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    raise WaitTimeoutError(task, timeout or 0.0)
                delay = min(delay, remaining)
            self._sleep(delay)

    def _follow(
        self, task_id: str, deadline: float | None, timeout: float | None, reconnects: int
    ) -> Iterator[TaskResource]:
        from websockets.exceptions import ConnectionClosed  # noqa: PLC0415 (watch only)

        last: TaskResource | None = None
        failures = 0
        while True:
            try:
                for task in self._socket_changes(task_id, deadline):
                    failures = 0
                    if last is not None and task.version <= last.version:
                        continue  # seen already, or older than what was seen
                    last = task
                    yield task
                    if task.status in _TERMINAL:
                        return
            except TimeoutError:
                if last is None:
                    last = self.get(task_id)
                raise WaitTimeoutError(last, timeout or 0.0) from None
            except (ConnectionClosed, OSError):
                failures += 1
                if failures > reconnects:
                    raise
                self._sleep(min(0.2 * 2**failures, 5.0))

    def _socket_changes(self, task_id: str, deadline: float | None) -> Iterator[TaskResource]:
        """The task resources one connection receives for ``task_id``, after subscribing;
        raises ``TimeoutError`` at ``deadline``."""
        from websockets.sync.client import connect  # noqa: PLC0415 (watch only)

        url = str(self.websocket_url)
        presign = getattr(self.auth, "presign", None)
        if callable(presign):
            url = presign(url)
        request_id = uuid.uuid4().hex
        subscribe = Subscribe(action="subscribe", task_id=task_id, request_id=request_id)
        with connect(url, open_timeout=self.timeout, max_size=None) as socket:
            socket.send(subscribe.model_dump_json(exclude_none=True))
            while True:
                wait = None if deadline is None else deadline - self._clock()
                if wait is not None and wait <= 0:
                    raise TimeoutError
                raw = socket.recv(timeout=wait)
                try:
                    message = SERVER_MESSAGE_ADAPTER.validate_json(raw)
                except ValidationError:
                    continue  # a message of a newer protocol: not one this client reads
                if isinstance(message, ErrorMessage) and message.request_id == request_id:
                    error = message.error
                    cls = _ERRORS.get(error.code, ApiError)
                    raise cls(0, error.code, error.message, error.details)
                if isinstance(message, TaskMessage) and message.task.id == task_id:
                    yield self.get(task_id) if message.omitted else message.task

    # -- HTTP --
    def _get_response(self, task_id: str) -> Response:
        return self.request("GET", f"/tasks/{_quote(task_id)}")

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        retry: bool | None = None,
    ) -> Response:
        """One API call; raises :class:`ApiError` (or a subclass) for an error response."""
        retry = method in ("GET", "HEAD") or path.endswith("/cancel") if retry is None else retry
        attempts = 1 + (self.retries if retry else 0)
        backoff = 0.2
        for attempt in range(attempts):
            response = self._send(method, path, body, headers or {})
            if response.status < 400:
                return response
            if attempt + 1 < attempts and response.status in _RETRYABLE:
                self._sleep(max(backoff, response.retry_after or 0.0))
                backoff *= 2
                continue
            raise error_from_response(response.status, response.body)
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, method: str, path: str, body: Any, extra: Mapping[str, str]) -> Response:
        url = self.base_url + path
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {"Accept": "application/json", **extra}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.auth is not None:
            headers.update(self.auth.headers(method, url, headers, data))
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                return Response(reply.status, dict(reply.headers), reply.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return Response(exc.code, dict(exc.headers), exc.read())


def _quote(task_id: str) -> str:
    return urllib.parse.quote(task_id, safe="")
