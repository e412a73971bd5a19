"""The push protocol (docs/push.md, docs/design.md §7a): the messages of one WebSocket, and the
one use case that answers a client's message.

The same protocol runs over API Gateway's WebSocket API (``entrypoints/sockets.py``,
``entrypoints/notify.py``) and over ``/ws`` of `taskmanager serve` (``entrypoints/local/``);
the client SDK (``taskmanager.client``) speaks it too. That is why it lives in the domain:
it is pure pydantic and a pure use case over the ports, and the SDK may import the domain but
no entrypoint.

Client → server, told apart by ``action`` (the key API Gateway routes on):

- ``subscribe``: one ``task_id``, or every task of the caller (no ``task_id``);
- ``unsubscribe``: the same forms;
- ``submit``: the body of ``POST /tasks`` as ``task``, an optional ``idempotency_key``.

Server → client, told apart by ``type``: ``accepted`` (a submit's task), ``task`` (the task
resource after a change, or at once for a new subscription: the catch-up), ``subscribed`` /
``unsubscribed`` (acknowledgements), and ``error`` (the standard error body). Every client
message may carry a ``request_id``; each answer to it carries the same one.
"""

# No ``from __future__ import annotations``: pydantic evaluates the annotations at class
# creation either way, and string annotations cost it more (see events.py).
import json
from typing import Annotated, Any, Final, Literal, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from taskmanager.domain import services
from taskmanager.domain.errors import (
    InvalidCommandError,
    InvalidRequestError,
    PayloadTooLargeError,
    TaskManagerError,
    TaskNotFoundError,
)
from taskmanager.domain.events import (
    OutboundEvent,
    TaskCreated,
    TaskResource,
    TaskSuccessful,
    task_resource,
)
from taskmanager.domain.model import SubmitTask
from taskmanager.domain.ports import Clock, IdFactory, TaskRepository
from taskmanager.domain.services import Policy

#: The largest client message a server reads (UTF-8 bytes): a submit of the largest input
#: (128 KiB) fits with room to spare. API Gateway refuses messages over 128 KB itself.
MAX_CLIENT_MESSAGE_BYTES: Final = 512 * 1024
#: API Gateway's limit on a message it sends (``post_to_connection``): 128 KB.
MAX_SERVER_MESSAGE_BYTES: Final = 128 * 1024
#: Task ids are UUIDs; as on HTTP, a longer id names no task.
MAX_TASK_ID_LENGTH: Final = 64

RequestId = Annotated[
    str,
    Field(min_length=1, max_length=128, description="chosen by the client; echoed in the answer"),
]
TaskId = Annotated[str, Field(min_length=1, max_length=MAX_TASK_ID_LENGTH)]
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=255)]

_CLIENT: Final = ConfigDict(frozen=True, extra="forbid", defer_build=True)
_SERVER: Final = ConfigDict(frozen=True, extra="forbid", defer_build=True)


# --- client → server ------------------------------------------------------------------------


class Subscribe(BaseModel):
    """Follow one task (``task_id``) or every task of the caller (no ``task_id``). A task
    subscription is answered at once with the task as it is (a ``task`` message)."""

    model_config = _CLIENT
    action: Literal["subscribe"]
    task_id: TaskId | None = None
    request_id: RequestId | None = None


class Unsubscribe(BaseModel):
    """Stop following one task, or (no ``task_id``) stop following every task."""

    model_config = _CLIENT
    action: Literal["unsubscribe"]
    task_id: TaskId | None = None
    request_id: RequestId | None = None


class Submit(BaseModel):
    """Submit a task (``task`` is the body of ``POST /tasks``); the connection then follows
    it. The same ``idempotency_key`` gives the same task again, as the HTTP header does."""

    model_config = _CLIENT
    action: Literal["submit"]
    task: SubmitTask
    idempotency_key: IdempotencyKey | None = None
    request_id: RequestId | None = None


ClientMessage = Annotated[Subscribe | Unsubscribe | Submit, Field(discriminator="action")]
CLIENT_MESSAGE_ADAPTER: Final[TypeAdapter[Subscribe | Unsubscribe | Submit]] = TypeAdapter(
    ClientMessage
)


# --- server → client ------------------------------------------------------------------------


class ErrorBody(BaseModel):
    """The standard error body, as the HTTP API's ``{"error": {...}}`` holds it."""

    model_config = _SERVER
    code: str
    message: str
    details: Any = None


class Accepted(BaseModel):
    """A submit was accepted: the task, which the connection now follows."""

    model_config = _SERVER
    type: Literal["accepted"] = "accepted"
    request_id: RequestId | None = None
    replayed: bool = Field(
        default=False, description="the idempotency key's task again, not a new one"
    )
    task: TaskResource


class TaskMessage(BaseModel):
    """The task resource, as ``GET /tasks/{id}`` returns it: after every change, and at once
    for a new subscription (then with the subscribe's ``request_id``). Keep the highest
    ``version`` seen and drop older ones. ``omitted`` names the fields left out of a
    message too large to send (``input``, then ``result``): read the task to have them."""

    model_config = _SERVER
    type: Literal["task"] = "task"
    request_id: RequestId | None = None
    task: TaskResource
    omitted: list[Literal["input", "result"]] = Field(default_factory=list)


class Subscribed(BaseModel):
    """A subscription to every task of the caller is in place."""

    model_config = _SERVER
    type: Literal["subscribed"] = "subscribed"
    request_id: RequestId | None = None
    task_id: TaskId | None = None


class Unsubscribed(BaseModel):
    """The connection no longer follows ``task_id`` (every task: none)."""

    model_config = _SERVER
    type: Literal["unsubscribed"] = "unsubscribed"
    request_id: RequestId | None = None
    task_id: TaskId | None = None


class ErrorMessage(BaseModel):
    """A message could not be served: a malformed one, another owner's task, a refused
    submit. The connection stays open."""

    model_config = _SERVER
    type: Literal["error"] = "error"
    request_id: RequestId | None = None
    error: ErrorBody


ServerMessage = Annotated[
    Accepted | TaskMessage | Subscribed | Unsubscribed | ErrorMessage,
    Field(discriminator="type"),
]
SERVER_MESSAGE_ADAPTER: Final[
    TypeAdapter[Accepted | TaskMessage | Subscribed | Unsubscribed | ErrorMessage]
] = TypeAdapter(ServerMessage)


# --- reading and answering ------------------------------------------------------------------


def parse_client_message(raw: str | bytes) -> Subscribe | Unsubscribe | Submit:
    """The client message in ``raw`` (JSON text), or an :class:`InvalidRequestError` whose
    details say what is wrong (never the input echoed back)."""
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > MAX_CLIENT_MESSAGE_BYTES:
        raise PayloadTooLargeError("message", size, MAX_CLIENT_MESSAGE_BYTES)
    try:
        return CLIENT_MESSAGE_ADAPTER.validate_json(raw)
    except ValidationError as exc:
        details = [
            {"loc": list(e["loc"]), "type": e["type"], "msg": e["msg"]}
            for e in exc.errors(include_url=False)
        ]
        if any(e["type"] == "json_invalid" for e in details):
            raise InvalidRequestError("message is not valid JSON", details=details) from None
        if any(e["type"] == "union_tag_invalid" for e in details) or any(
            e["loc"][:1] == [] for e in details
        ):
            raise InvalidRequestError(
                "message needs an action: subscribe, unsubscribe or submit", details=details
            ) from None
        raise InvalidCommandError("message does not match the protocol", details=details) from None


def request_id_of(raw: str | bytes) -> str | None:
    """The ``request_id`` of a message that did not parse, when one can still be read, so
    its error names the request it answers."""
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    request_id = value.get("request_id") if isinstance(value, dict) else None
    return request_id if isinstance(request_id, str) and 0 < len(request_id) <= 128 else None


def error_message(error: TaskManagerError, request_id: str | None = None) -> ErrorMessage:
    return ErrorMessage(
        request_id=request_id,
        error=ErrorBody(code=error.code, message=error.message, details=error.details),
    )


class Subscriptions(Protocol):
    """What one connection of one owner follows; each transport keeps its own (a set in
    memory locally, items in DynamoDB on AWS)."""

    def subscribe(self, task_id: str | None) -> None:
        """Follow ``task_id`` (``None``: every task of the connection's owner)."""
        ...

    def unsubscribe(self, task_id: str | None) -> None: ...


class PushDependencies(Protocol):
    """The ports :func:`answer` uses (the entrypoints' ``Dependencies`` has them all)."""

    @property
    def repo(self) -> TaskRepository: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def ids(self) -> IdFactory: ...
    @property
    def policy(self) -> Policy: ...


class Answer(NamedTuple):
    """The message to send back, and the task a submit created (for the caller's metrics;
    ``None`` when nothing new was created)."""

    message: Accepted | TaskMessage | Subscribed | Unsubscribed | ErrorMessage
    created: TaskResource | None = None


def answer(
    message: Subscribe | Unsubscribe | Submit,
    *,
    owner: str,
    subscriptions: Subscriptions,
    deps: PushDependencies,
) -> Answer:
    """Serve one client message for ``owner``: a domain error becomes an ``error`` message.

    A task subscription is recorded *before* the task is read, so no change between the read
    and the subscription is lost (the client drops what it has already seen). Another
    owner's task is ``TASK_NOT_FOUND`` and leaves no subscription behind."""
    request_id = message.request_id
    try:
        if isinstance(message, Subscribe):
            if message.task_id is None:
                subscriptions.subscribe(None)
                return Answer(Subscribed(request_id=request_id))
            subscriptions.subscribe(message.task_id)
            try:
                task = services.get_task(
                    message.task_id, owner=owner, repo=deps.repo, clock=deps.clock
                )
            except TaskNotFoundError:
                subscriptions.unsubscribe(message.task_id)
                raise
            if task.is_terminal:  # nothing will change: keep nothing
                subscriptions.unsubscribe(message.task_id)
            return Answer(TaskMessage(request_id=request_id, task=task_resource(task)))
        if isinstance(message, Unsubscribe):
            subscriptions.unsubscribe(message.task_id)
            return Answer(Unsubscribed(request_id=request_id, task_id=message.task_id))
        result = services.submit_task(
            message.task,
            owner=owner,
            repo=deps.repo,
            clock=deps.clock,
            ids=deps.ids,
            policy=deps.policy,
            idempotency_key=message.idempotency_key,
        )
        resource = task_resource(result.task)
        if not result.task.is_terminal:
            subscriptions.subscribe(result.task.id)
        accepted = Accepted(request_id=request_id, replayed=result.replayed, task=resource)
        return Answer(accepted, None if result.replayed else resource)
    except TaskManagerError as exc:
        return Answer(error_message(exc, request_id))


def task_message_json(resource: TaskResource, limit: int = MAX_SERVER_MESSAGE_BYTES) -> str:
    """The ``task`` message of ``resource`` as JSON text of at most ``limit`` bytes where it
    can be: ``input``, then ``result``, are left out (and named in ``omitted``) of a message
    that would be larger. The client reads the task for them."""
    text = TaskMessage(task=resource).model_dump_json()
    omitted: list[Literal["input", "result"]] = []
    for name in ("input", "result"):
        if len(text.encode()) <= limit:
            break
        omitted.append(name)
        resource = resource.model_copy(update={name: None})
        text = TaskMessage(task=resource, omitted=list(omitted)).model_dump_json()
    return text


def task_resource_at(event: OutboundEvent, input_value: Any) -> TaskResource:
    """The task resource at the version an event announces: events leave out ``input``
    (``TaskCreated`` carries it), so the caller gives it (it never changes)."""
    return TaskResource.model_construct(
        id=event.id,
        type=event.type,
        status=event.status,
        input=event.input if isinstance(event, TaskCreated) else input_value,
        progress=event.progress,
        result=event.result if isinstance(event, TaskSuccessful) else None,
        error=event.error,
        version=event.version,
        created_at=event.created_at,
        updated_at=event.updated_at,
        started_at=event.started_at,
        finished_at=event.finished_at,
        deadline_at=event.deadline_at,
        heartbeat_seconds=event.heartbeat_seconds,
        start_timeout_seconds=event.start_timeout_seconds,
        expires_at=event.expires_at,
    )


# --- notifying subscribers (AWS: the notify function) ---------------------------------------


class Subscribers(Protocol):
    """Every connection's subscriptions, as the notifier reads them."""

    def following(self, task_id: str, owner: str) -> list[str]:
        """The connections (ids) of ``owner`` that follow ``task_id`` or every task of
        ``owner``; each once."""
        ...

    def forget(self, connection_id: str) -> None:
        """Drop a connection and every subscription of it (it is gone)."""
        ...


class Pusher(Protocol):
    def push(self, connection_id: str, text: str) -> bool:
        """Send ``text`` to the connection; ``False`` when the connection is gone. Raises
        ``PushError`` when it could not be sent to a connection still there."""
        ...


class Notified(NamedTuple):
    sent: int
    gone: int


def notify_subscribers(
    event: OutboundEvent,
    *,
    repo: TaskRepository,
    clock: Clock,
    subscribers: Subscribers,
    pusher: Pusher,
) -> Notified:
    """Send the task at ``event``'s version to each connection of the task's owner that
    follows it; a gone connection loses its subscriptions. The owner (and the input, which
    events leave out) are read from the store; a task that is gone or expired notifies no
    one. A :class:`~taskmanager.domain.errors.PushError` leaves the rest unsent: the event
    is to be handled again (clients drop the versions they have already seen)."""
    task = repo.get(event.id)
    if task is None or task.is_expired(clock.now()):
        return Notified(0, 0)
    connections = subscribers.following(task.id, task.owner)
    if not connections:
        return Notified(0, 0)
    text = task_message_json(task_resource_at(event, task.input))
    sent = gone = 0
    for connection_id in connections:
        if pusher.push(connection_id, text):
            sent += 1
        else:
            subscribers.forget(connection_id)
            gone += 1
    return Notified(sent, gone)


#: Every message model of the protocol, for the exported JSON Schema.
PROTOCOL_MODELS: Final[tuple[type[BaseModel], ...]] = (
    Subscribe,
    Unsubscribe,
    Submit,
    Accepted,
    TaskMessage,
    Subscribed,
    Unsubscribed,
    ErrorMessage,
)
