"""The HTTP API (DESIGN §5): one route table, served by Powertools in Lambda and directly by
the local server.

``create_app(deps_provider, owner=...)`` declares the routes once on a :class:`TaskApi`: each
is a plain function whose annotated parameters (``Body``, ``Header``, ``Query``, path) say
what it reads. The same table serves two ways:

- Lambda: ``TaskApi`` is Powertools' ``APIGatewayHttpResolver``; the Lambda ``handler`` calls
  :meth:`TaskApi.resolve` with API Gateway's payload v2 event;
- `taskmanager serve`: the ASGI app calls :meth:`TaskApi.handle` with the request's method,
  path, headers, query and body, without building an API Gateway event.

Both paths run the same checks and the same parameter binding (:meth:`TaskApi.call`): each
route's parameters are validated with pydantic adapters built once from its signature, so a
request costs a few microseconds beyond the use case. (Powertools' own validation middleware
rebuilds that per request and costs more than the route.) The OpenAPI document is generated
by Powertools from the same signatures, on first request. Routes are thin: read the request,
call one use case, shape the response. Every error is a ``TaskManagerError`` and leaves
through ``http_errors``: its status from the one table there, its body
``{"error": {"code", "message", "details"}}``. Checks that must come before any parsing (body
size, encoding, content type) run first, on the raw body.
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import functools
import inspect
import json
import re
import typing
import urllib.parse
from http import HTTPStatus
from typing import TYPE_CHECKING, Annotated, Any, Final, NamedTuple, cast

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from taskmanager.domain import services
from taskmanager.domain.errors import (
    InvalidCommandError,
    InvalidRequestError,
    TaskManagerError,
    TaskNotFoundError,
)
from taskmanager.domain.events import TaskResource, task_resource, task_resource_json
from taskmanager.domain.model import (
    DEFAULT_LIST_LIMIT,
    MAX_LIST_LIMIT,
    MAX_PAYLOAD_BYTES,
    SubmitTask,
    Task,
    TaskStatus,
)
from taskmanager.entrypoints import observability
from taskmanager.entrypoints.http_errors import (
    JSON,
    BodyTooLargeError,
    ErrorResponse,
    MethodNotAllowedError,
    RouteNotFoundError,
    UnauthenticatedError,
    UnsupportedMediaTypeError,
    error_response,
    internal_error,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from aws_lambda_powertools.utilities.typing import LambdaContext

    from taskmanager.entrypoints.bootstrap import Dependencies

    #: Names the caller from the API Gateway event the request came in (``{}`` locally).
    OwnerResolver = Callable[[Mapping[str, Any]], str | None]

#: A request body larger than this is refused with 413 before it is parsed: the largest
#: legal body is a 128 KiB input plus the few other fields of ``SubmitTask``.
MAX_BODY_BYTES: Final = MAX_PAYLOAD_BYTES + 8 * 1024
#: Seconds a client should wait before polling an open task again.
RETRY_AFTER_SECONDS: Final = 1
_RETRY_AFTER: Final = str(RETRY_AFTER_SECONDS)
#: Task ids are UUIDs; a longer path segment cannot name a task.
MAX_TASK_ID_LENGTH: Final = 64
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})


class TaskPage(BaseModel):
    """One page of ``GET /tasks``: newest first; pass ``next_cursor`` back for the next."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    items: list[TaskResource]
    next_cursor: str | None


# --- requests -------------------------------------------------------------------------------


class ApiRequest(NamedTuple):
    """One HTTP request, however it arrived (an API Gateway event or the local server).

    A named tuple, as the route table's other records: a dataclass costs a cold start
    several compiled functions per class, and is no cheaper to build per request."""

    method: str
    path: str
    #: Lower-case names; repeated headers joined with ``,`` (as API Gateway does).
    headers: Mapping[str, str]
    #: A name given more than once has the list of its values.
    query: Mapping[str, str | list[str]]
    #: The body as text (the checks before parsing made sure it is UTF-8), or ``None``.
    body: str | None
    #: The API Gateway event (the caller's identity is in its ``requestContext``); ``{}``
    #: locally.
    event: Mapping[str, Any]


_current: contextvars.ContextVar[ApiRequest] = contextvars.ContextVar("taskmanager_api_request")


# --- owners ---------------------------------------------------------------------------------


def iam_owner(event: Mapping[str, Any]) -> str | None:
    """The caller's stable IAM identity (HTTP API with ``AWS_IAM`` authorization).

    - A Cognito identity-pool user is its identity id (``cognito-identity:<identityId>``):
      every user of a pool arrives as one role session, so the ARN cannot tell them apart.
    - An assumed role is its account and role, ``arn:aws:sts::ACCOUNT:assumed-role/ROLE``:
      the session name changes per EC2 instance, ECS task or process, and a caller must keep
      its tasks (and its idempotency keys) across sessions.
    - Any other principal (IAM user, federated user, root) is its ARN as given.
    """
    return _iam_identity(event, keep_session=False)


def iam_session_owner(event: Mapping[str, Any]) -> str | None:
    """As :func:`iam_owner`, but an assumed role keeps its session name: each session is an
    owner of its own (``TASKMANAGER_OWNER_CLAIM=iam_session``)."""
    return _iam_identity(event, keep_session=True)


def _iam_identity(event: Mapping[str, Any], *, keep_session: bool) -> str | None:
    authorizer = event.get("requestContext", {}).get("authorizer") or {}
    iam = authorizer.get("iam") or {}
    cognito = iam.get("cognitoIdentity") or {}
    identity_id = cognito.get("identityId") if isinstance(cognito, dict) else None
    if isinstance(identity_id, str) and identity_id:
        return f"cognito-identity:{identity_id}"
    arn = iam.get("userArn")
    if not isinstance(arn, str) or not arn:
        return None
    return arn if keep_session else _without_session(arn)


def _without_session(arn: str) -> str:
    """``arn:PARTITION:sts::ACCOUNT:assumed-role/ROLE/SESSION`` without ``/SESSION``; any
    other ARN unchanged. A role name holds no ``/`` (its path is not part of this ARN)."""
    prefix, _, resource = arn.rpartition(":")
    if prefix.split(":")[2:3] != ["sts"] or not resource.startswith("assumed-role/"):
        return arn
    kind, role, *_session = resource.split("/")
    return f"{prefix}:{kind}/{role}"


def jwt_sub_owner(event: Mapping[str, Any]) -> str | None:
    """The ``sub`` claim of the caller's token (HTTP API with a JWT authorizer)."""
    authorizer = event.get("requestContext", {}).get("authorizer") or {}
    claims = (authorizer.get("jwt") or {}).get("claims") or {}
    sub = claims.get("sub")
    return sub if isinstance(sub, str) and sub else None


def fixed_owner(owner: str) -> OwnerResolver:
    """Every caller is ``owner`` (the local server uses ``"local"``)."""
    return lambda _event: owner


OWNER_RESOLVERS: Final[dict[str, OwnerResolver]] = {
    "iam": iam_owner,
    "iam_session": iam_session_owner,
    "jwt_sub": jwt_sub_owner,
}


# --- errors ---------------------------------------------------------------------------------


def _invalid(errors: list[dict[str, Any]]) -> InvalidRequestError:
    """The error for parameters that do not validate (``errors`` as pydantic reports them):
    a request that cannot be read (JSON that does not parse, a bad query or header) is an
    ``InvalidRequestError``; a body that parses but breaks the contract, an
    ``InvalidCommandError``."""
    details = _public_errors(errors)
    if any(e.get("type") == "json_invalid" for e in errors):
        return InvalidRequestError("request body is not valid JSON", details=details)
    if all(tuple(e.get("loc", ()))[:1] == ("body",) for e in errors):
        return InvalidCommandError("request body does not match the contract", details=details)
    return InvalidRequestError("request parameters are not valid", details=details)


def _public_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic's errors without the offending input echoed back (it may be 128 KiB)."""
    return [
        {"loc": list(e.get("loc", ())), "type": e.get("type"), "msg": e.get("msg")} for e in errors
    ]


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)


#: One decoder for every body (``json.loads`` with an option builds a decoder per call).
_DECODER: Final = json.JSONDecoder(parse_constant=_refuse_constant)


def _json_loads(text: str) -> Any:
    """``json.loads`` that refuses NaN/Infinity and turns absurd nesting into a parse error."""
    try:
        return _DECODER.decode(text)
    except RecursionError as exc:
        raise json.JSONDecodeError("JSON nested too deeply", text, 0) from exc


def _unexpected(exc: Exception) -> Response[str]:
    return error_response(internal_error(exc))


# --- checks on the raw body -----------------------------------------------------------------


def check_body(method: str, headers: Mapping[str, str], raw: bytes) -> Response[str] | None:
    """413 over the body limit, 400 for a body that is not UTF-8, 415 for a body that is not
    JSON: decided on the raw body, before anything parses it. ``headers`` lower-case."""
    if not raw:
        return None
    if len(raw) > MAX_BODY_BYTES:
        return error_response(BodyTooLargeError(MAX_BODY_BYTES, len(raw)))
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return error_response(InvalidRequestError("body is not UTF-8"))
    if method.upper() in _BODY_METHODS:
        content_type = headers.get("content-type", "").lower()
        media = content_type.split(";", 1)[0].strip()
        if media != JSON and not (media.startswith("application/") and media.endswith("+json")):
            return error_response(UnsupportedMediaTypeError(content_type))
    return None


# --- the route table ------------------------------------------------------------------------


class _Source:
    """Where a route parameter is read from, with its pydantic ``Field`` constraints
    (``options``).

    Powertools' ``openapi.params`` markers of the same names would do, but importing them
    builds its OpenAPI machinery (a pydantic model among it) on every cold start, while only
    ``GET /openapi.json`` needs it: the document is built from these markers translated to
    Powertools' own (:func:`_described`)."""

    __slots__ = ("options",)

    def __init__(self, **options: Any) -> None:
        self.options = options


class Body(_Source):
    """The parameter is the request's JSON body."""

    __slots__ = ()


class Header(_Source):
    """The parameter is a request header (``alias``: its name; else the parameter's, with
    ``-`` for ``_``)."""

    __slots__ = ()


class Query(_Source):
    """The parameter is a query string parameter."""

    __slots__ = ()


def _described(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` with a signature Powertools' OpenAPI generator reads: each of our markers
    replaced by Powertools' marker of the same name and options."""
    from aws_lambda_powertools.event_handler.openapi import params  # noqa: PLC0415

    hints = typing.get_type_hints(func, include_extras=True)
    signature = inspect.signature(func)
    parameters = []
    for name, parameter in signature.parameters.items():
        annotation = hints[name]
        if typing.get_origin(annotation) is Annotated:
            base, *extras = typing.get_args(annotation)
            translated = [
                getattr(params, type(e).__name__)(**e.options) if isinstance(e, _Source) else e
                for e in extras
            ]
            annotation = cast("Any", Annotated)[(base, *translated)]
        parameters.append(parameter.replace(annotation=annotation))

    @functools.wraps(func)
    def described(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    described.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=parameters, return_annotation=hints.get("return", signature.return_annotation)
    )
    return described


class _Param(NamedTuple):
    """One parameter of a route function: where it comes from and how it validates."""

    name: str
    source: str  # "path" | "query" | "header" | "body"
    key: str
    #: The parameter's pydantic validator, called directly: ``TypeAdapter.validate_python``
    #: forwards seven keyword options to it on every call.
    validate: Callable[..., Any]
    required: bool
    default: Any
    #: A path segment is always a string: a ``str`` parameter without constraints takes it
    #: as it is.
    as_is: bool = False


class Operation:
    """One route: method, path (``/tasks/<task_id>``), function and its OpenAPI options.

    Its parameters' validators (:attr:`params`) are built on the route's first request, so
    a cold start builds those of the one route it serves, not of every route."""

    __slots__ = ("_params", "func", "method", "options", "path", "plain_path", "rule")

    def __init__(
        self,
        method: str,
        path: str,
        func: Callable[..., Response[str]],
        options: Mapping[str, Any],
        rule: re.Pattern[str],
    ) -> None:
        self.method = method
        self.path = path
        self.func = func
        self.options = options
        self.rule = rule
        self._params: tuple[_Param, ...] | None = None
        #: Every parameter is a path segment taken as it is (known once :attr:`params` is).
        self.plain_path = False

    @property
    def params(self) -> tuple[_Param, ...]:
        """How each parameter of :attr:`func` is read and validated."""
        params = self._params
        if params is None:  # two racing first requests build the same thing twice
            params = _parameters(self.func, self.path)
            self.plain_path = all(param.as_is for param in params)
            self._params = params
        return params


def _parameters(func: Callable[..., Any], path: str) -> tuple[_Param, ...]:
    """How each parameter of ``func`` is read and validated, from its annotations (the same
    ones Powertools reads for the OpenAPI document)."""
    hints = typing.get_type_hints(func, include_extras=True)
    in_path = set(re.findall(r"<(\w+)>", path))
    params: list[_Param] = []
    for name, parameter in inspect.signature(func).parameters.items():
        annotation, info = hints[name], None
        if typing.get_origin(annotation) is Annotated:
            annotation, *extras = typing.get_args(annotation)
            info = next((e for e in extras if isinstance(e, _Source)), None)
        alias = None if info is None else info.options.get("alias")
        if isinstance(info, Body):
            source, key = "body", name
        elif isinstance(info, Header):
            source, key = "header", (alias or name.replace("_", "-")).lower()
        else:
            source = "path" if name in in_path else "query"
            key = alias or name
        target: Any = annotation
        if info is not None:
            # The alias names the source (``key``); it means nothing to a bare adapter.
            constraints = {k: v for k, v in info.options.items() if k != "alias"}
            target = cast("Any", Annotated)[annotation, Field(**constraints)]
        required = parameter.default is inspect.Parameter.empty
        default = None if required else parameter.default
        as_is = source == "path" and annotation is str and info is None
        validate = TypeAdapter(target).validator.validate_python
        params.append(_Param(name, source, key, validate, required, default, as_is))
    return tuple(params)


def _missing(loc: tuple[Any, ...]) -> dict[str, Any]:
    return {"type": "missing", "loc": loc, "msg": "Field required"}


def _bind(
    operation: Operation, request: ApiRequest, path_args: Mapping[str, str]
) -> dict[str, Any]:
    """The route function's arguments, validated; raises ``InvalidRequestError``."""
    params = operation.params
    if operation.plain_path:  # the pattern matched, so every segment is there
        return dict(path_args)
    values: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for param in params:
        loc: tuple[Any, ...]
        if param.source == "body":
            loc = ("body",)
            value: Any = None
            if request.body:
                try:
                    value = _json_loads(request.body)
                except json.JSONDecodeError as exc:
                    error = {
                        "type": "json_invalid",
                        "loc": ("body", exc.pos),
                        "msg": "JSON decode error",
                    }
                    raise _invalid([error]) from exc
        else:
            loc = (param.source, param.key)
            source: Mapping[str, Any] = (
                path_args
                if param.source == "path"
                else request.query
                if param.source == "query"
                else request.headers
            )
            value = source.get(param.key)
        if value is None:
            if param.required:
                errors.append(_missing(loc))
            else:
                values[param.name] = param.default
            continue
        if param.as_is:
            values[param.name] = value
            continue
        try:
            values[param.name] = param.validate(value, from_attributes=True)
        except ValidationError as exc:
            errors.extend({**e, "loc": (*loc, *e["loc"])} for e in exc.errors(include_url=False))
    if errors:
        raise _invalid(errors)
    return values


class TaskApi(APIGatewayHttpResolver):
    """The route table, served to API Gateway events by Powertools (``resolve``) and to the
    local server directly (``handle``)."""

    def __init__(self) -> None:
        # Validation is the route table's own (``_bind``), the same on both paths.
        super().__init__(enable_validation=False)
        self.operations: list[Operation] = []
        self._openapi: str | None = None

    def operation(
        self, method: str, path: str, **options: Any
    ) -> Callable[[Callable[..., Response[str]]], Callable[..., Response[str]]]:
        """Declare a route: ``func``'s annotated parameters say what it reads."""

        def register(func: Callable[..., Response[str]]) -> Callable[..., Response[str]]:
            operation = Operation(method, path, func, options, self._compile_regex(path))
            self.operations.append(operation)

            def endpoint(**path_args: str) -> Response[str]:
                event = self.current_event
                request = ApiRequest(
                    method,
                    event.path,
                    event.headers,
                    _event_query(event.raw_event),
                    event.decoded_body,
                    event.raw_event,
                )
                return self.call(operation, request, path_args)

            endpoint.__name__ = func.__name__
            self.route(path, method, include_in_schema=False)(endpoint)
            return func

        return register

    def call(
        self, operation: Operation, request: ApiRequest, path_args: Mapping[str, str]
    ) -> Response[str]:
        """Run one route: bind its parameters, call it, map every error to its response."""
        token = _current.set(request)
        try:
            return operation.func(**_bind(operation, request, path_args))
        except TaskManagerError as exc:
            return error_response(exc)
        except Exception as exc:  # the contract: never a stack trace
            return _unexpected(exc)
        finally:
            _current.reset(token)

    def handle(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        query: Mapping[str, str | list[str]],
        body: bytes,
    ) -> Response[str]:
        """One request of the local server (``headers`` with lower-case names)."""
        refusal = check_body(method, headers, body)
        if refusal is not None:
            return refusal
        for operation in self.operations:
            if operation.method == method:
                match = operation.rule.match(path)
                if match is not None:
                    text = body.decode("utf-8") if body else None
                    request = ApiRequest(
                        method=method, path=path, headers=headers, query=query, body=text, event={}
                    )
                    return self.call(operation, request, match.groupdict())
        return self.no_route(method, path)

    def no_route(self, method: str, path: str) -> Response[str]:
        """405 with ``Allow`` when the path exists for other methods, else 404."""
        allowed = sorted(op.method for op in self.operations if op.rule.match(path))
        if allowed:
            error = MethodNotAllowedError(method, path, allowed)
            return error_response(error, {"Allow": ", ".join(allowed)})
        return error_response(RouteNotFoundError(method, path))

    def openapi_document(self) -> str:
        """The OpenAPI document of the routes, generated by Powertools from the routes'
        signatures (built once, on first request)."""
        if self._openapi is None:
            described = APIGatewayHttpResolver(enable_validation=True)
            for operation in self.operations:
                described.route(operation.path, operation.method, **operation.options)(
                    _described(operation.func)
                )
            self._openapi = described.get_openapi_json_schema(
                title="taskmanager",
                version="1",
                description="Long-running tasks behind short-lived HTTP gateways.",
            )
        return self._openapi

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        """An API Gateway payload v2 event: the checks on the raw body, then Powertools
        routes it to the table."""
        refusal = _check_event_body(event)
        if refusal is not None:
            return {
                "statusCode": refusal.status_code,
                "headers": dict(refusal.headers),
                "cookies": [],
                "body": refusal.body,
                "isBase64Encoded": False,
            }
        return super().resolve(event, context)


def _event_query(event: Mapping[str, Any]) -> dict[str, str | list[str]]:
    """The query of a payload v2 event; a name repeated in the raw query has a list."""
    query: dict[str, str | list[str]] = dict(event.get("queryStringParameters") or {})
    raw = event.get("rawQueryString") or ""
    if raw:
        seen: set[str] = set()
        for pair in raw.split("&"):
            name = urllib.parse.unquote_plus(pair.split("=", 1)[0])
            if name in seen and name in query and isinstance(query[name], str):
                query[name] = cast("str", query[name]).split(",")
            seen.add(name)
    return query


def _check_event_body(event: Mapping[str, Any]) -> Response[str] | None:
    """``check_body`` on an event's body (base64 or text)."""
    body = event.get("body")
    if not body:
        return None
    if len(body) > MAX_BODY_BYTES * 4 // 3 + 4:  # even base64 cannot make this fit
        return error_response(BodyTooLargeError(MAX_BODY_BYTES, len(body)))
    raw: bytes
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return error_response(InvalidRequestError("body is not valid base64"))
    else:
        raw = body.encode("utf-8", "surrogatepass")
    method = event.get("requestContext", {}).get("http", {}).get("method", "")
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    return check_body(method, headers, raw)


def _task_response(task: Task, status: int, headers: dict[str, str] | None = None) -> Response[str]:
    headers = headers or {}
    if not task.is_terminal:
        headers["Retry-After"] = _RETRY_AFTER
    body = task_resource_json(task)
    return Response(status_code=status, content_type=JSON, body=body, headers=headers)


def _check_task_id(task_id: str) -> str:
    if len(task_id) > MAX_TASK_ID_LENGTH:
        raise TaskNotFoundError(task_id[:MAX_TASK_ID_LENGTH])
    return task_id


def _responses(
    success: int, model: type[BaseModel], description: str, *errors: int
) -> dict[int, Any]:
    out: dict[int, Any] = {
        success: {"description": description, "content": {JSON: {"model": model}}}
    }
    for status in errors:
        out[status] = {
            "description": HTTPStatus(status).phrase,
            "content": {JSON: {"model": ErrorResponse}},
        }
    return out


def create_app(
    deps_provider: Callable[[], Dependencies],
    *,
    owner: OwnerResolver = iam_owner,
    count: Callable[[str], None] = lambda _name: None,
) -> TaskApi:
    """The task API's routes over the dependencies ``deps_provider()`` returns (called per
    request, so it should be cached); ``owner`` names the caller from the request's event;
    ``count(name)`` adds one to a metric (the Lambda's CloudWatch metrics; nothing locally)."""
    app = TaskApi()

    def caller() -> str:
        name = owner(_current.get().event)
        if name is None:
            raise UnauthenticatedError("the request carries no caller identity")
        return name

    @app.operation(
        "POST",
        "/tasks",
        status_code=202,
        summary="Submit a task",
        responses=_responses(202, TaskResource, "Accepted", 400, 401, 413, 415, 422),
    )
    def submit(
        command: Annotated[SubmitTask, Body()],
        idempotency_key: Annotated[
            str | None,
            Header(
                alias="idempotency-key",
                description="Same key, same request: the same task again",
            ),
        ] = None,
    ) -> Response[str]:
        deps = deps_provider()
        result = services.submit_task(
            command,
            owner=caller(),
            repo=deps.repo,
            clock=deps.clock,
            ids=deps.ids,
            policy=deps.policy,
            idempotency_key=idempotency_key,
        )
        headers = {"Location": f"/tasks/{result.task.id}"}
        if result.replayed:
            headers["Idempotent-Replayed"] = "true"
        else:
            count(observability.TASKS_SUBMITTED)
        return _task_response(result.task, 202, headers)

    @app.operation(
        "GET",
        "/tasks/<task_id>",
        summary="Get a task",
        responses=_responses(200, TaskResource, "The task", 401, 404),
    )
    def get(task_id: str) -> Response[str]:
        deps = deps_provider()
        task = services.get_task(
            _check_task_id(task_id), owner=caller(), repo=deps.repo, clock=deps.clock
        )
        return _task_response(task, 200)

    @app.operation(
        "GET",
        "/tasks",
        summary="List the caller's tasks, newest first",
        responses=_responses(200, TaskPage, "One page of tasks", 400, 401),
    )
    def list_(
        status: Annotated[TaskStatus | None, Query()] = None,
        type: Annotated[str | None, Query(max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = DEFAULT_LIST_LIMIT,
        cursor: Annotated[str | None, Query(max_length=1024)] = None,
    ) -> Response[str]:
        deps = deps_provider()
        page = services.list_tasks(
            owner=caller(),
            repo=deps.repo,
            clock=deps.clock,
            status=status,
            type=type,
            limit=limit,
            cursor=cursor,
        )
        body = TaskPage.model_construct(
            items=[task_resource(t) for t in page.items], next_cursor=page.next_cursor
        )
        return Response(status_code=200, content_type=JSON, body=body.model_dump_json())

    @app.operation(
        "POST",
        "/tasks/<task_id>/cancel",
        status_code=202,
        summary="Cancel a task (it fails with CANCELLED)",
        responses=_responses(202, TaskResource, "Cancelled", 401, 404, 409),
    )
    def cancel(task_id: str) -> Response[str]:
        deps = deps_provider()
        task = services.cancel_task(
            _check_task_id(task_id),
            owner=caller(),
            repo=deps.repo,
            clock=deps.clock,
            policy=deps.policy,
        )
        return _task_response(task, 202)

    @app.operation("GET", "/openapi.json", include_in_schema=False)
    def openapi() -> Response[str]:
        return Response(status_code=200, content_type=JSON, body=app.openapi_document())

    def no_route(_exc: NotFoundError) -> Response[str]:
        event = app.current_event
        return app.no_route(event.http_method.upper(), event.path)

    app.exception_handler_manager.update_exception_handlers(
        {NotFoundError: no_route, Exception: _unexpected}
    )
    return app


# --- Lambda ---------------------------------------------------------------------------------


def _correlation(event: Mapping[str, Any]) -> str | None:
    request_id = event["requestContext"]["requestId"]
    return str(request_id) if request_id else None


@functools.cache
def _lambda_handler() -> Callable[[Any, Any], Any]:
    from taskmanager.entrypoints import bootstrap  # noqa: PLC0415

    observability.require_powertools()  # before the routes use what older releases lack
    owner = OWNER_RESOLVERS[bootstrap.settings().owner_claim]
    app = create_app(bootstrap.aws_dependencies, owner=owner, count=observability.count)
    return observability.instrument(app.resolve, _correlation)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The API Lambda: API Gateway HTTP API (payload v2) events."""
    response: dict[str, Any] = _lambda_handler()(event, context)
    return response
