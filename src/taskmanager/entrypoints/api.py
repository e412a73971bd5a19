"""The HTTP API (DESIGN §5) on Powertools' ``APIGatewayHttpResolver`` (payload v2).

``create_app(deps_provider, owner=...)`` builds the routes; the Lambda ``handler`` serves them
with the AWS dependencies of :mod:`bootstrap`, the local server with SQLite ones. Routes are
thin: read the request, call one use case, shape the response. Every error leaves through
one exception handler as ``{"error": {"code", "message", "details"}}``; checks that must come
before any parsing (body size, encoding, content type) run in :meth:`TaskApi.resolve`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
from http import HTTPStatus
from typing import TYPE_CHECKING, Annotated, Any, Final

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query
from pydantic import BaseModel, ConfigDict

from taskmanager.domain import services
from taskmanager.domain.errors import (
    IdempotencyKeyReusedError,
    InvalidRequestError,
    PayloadTooLargeError,
    StorageError,
    TaskAlreadyFinishedError,
    TaskManagerError,
    TaskNotFoundError,
)
from taskmanager.domain.events import TaskResource, task_resource
from taskmanager.domain.model import (
    DEFAULT_LIST_LIMIT,
    MAX_LIST_LIMIT,
    MAX_PAYLOAD_BYTES,
    SubmitTask,
    Task,
    TaskStatus,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from taskmanager.entrypoints.bootstrap import Dependencies

    OwnerResolver = Callable[[APIGatewayProxyEventV2], str | None]

logger = logging.getLogger(__name__)

#: A request body larger than this is refused with 413 before it is parsed: the largest
#: legal body is a 128 KiB input plus the few other fields of ``SubmitTask``.
MAX_BODY_BYTES: Final = MAX_PAYLOAD_BYTES + 8 * 1024
#: Seconds a client should wait before polling an open task again.
RETRY_AFTER_SECONDS: Final = 1
#: Task ids are UUIDs; a longer path segment cannot name a task.
MAX_TASK_ID_LENGTH: Final = 64
JSON: Final = "application/json"
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})

_STATUS_BY_CODE: Final[dict[str, int]] = {
    InvalidRequestError.code: 400,
    PayloadTooLargeError.code: 413,
    TaskNotFoundError.code: 404,
    TaskAlreadyFinishedError.code: 409,
    IdempotencyKeyReusedError.code: 422,
    StorageError.code: 503,
}
_SUBMIT_FIELDS: Final = frozenset(SubmitTask.model_fields)


class ErrorBody(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """Every error response has this body."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    error: ErrorBody


class TaskPage(BaseModel):
    """One page of ``GET /tasks``: newest first; pass ``next_cursor`` back for the next."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    items: list[TaskResource]
    next_cursor: str | None


# --- owners ---------------------------------------------------------------------------------


def iam_owner(event: APIGatewayProxyEventV2) -> str | None:
    """The caller's IAM principal ARN (HTTP API with ``AWS_IAM`` authorization)."""
    authorizer = event.raw_event.get("requestContext", {}).get("authorizer") or {}
    iam = authorizer.get("iam") or {}
    arn = iam.get("userArn")
    return arn if isinstance(arn, str) and arn else None


def jwt_sub_owner(event: APIGatewayProxyEventV2) -> str | None:
    """The ``sub`` claim of the caller's token (HTTP API with a JWT authorizer)."""
    authorizer = event.raw_event.get("requestContext", {}).get("authorizer") or {}
    claims = (authorizer.get("jwt") or {}).get("claims") or {}
    sub = claims.get("sub")
    return sub if isinstance(sub, str) and sub else None


def fixed_owner(owner: str) -> OwnerResolver:
    """Every caller is ``owner`` (the local server uses ``"local"``)."""
    return lambda _event: owner


OWNER_RESOLVERS: Final[dict[str, OwnerResolver]] = {"iam": iam_owner, "jwt_sub": jwt_sub_owner}


class UnauthenticatedError(TaskManagerError):
    """The request carries no identity the API can own tasks by."""

    code = "UNAUTHENTICATED"


# --- errors ---------------------------------------------------------------------------------


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: Mapping[str, str] = {}
) -> Response[str]:
    body = json.dumps({"error": {"code": code, "message": message, "details": details}})
    return Response(status_code=status, content_type=JSON, body=body, headers=dict(headers))


def _validation_status(errors: list[dict[str, Any]]) -> tuple[int, str]:
    """400 for JSON that does not parse or a bad query/header; 422 for a body that parses
    but breaks the contract."""
    if any(e.get("type") == "json_invalid" for e in errors):
        return 400, "request body is not valid JSON"
    if all(tuple(e.get("loc", ()))[:1] == ("body",) for e in errors):
        return 422, "request body does not match the contract"
    return 400, "request parameters are not valid"


def _public_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic's errors without the offending input echoed back (it may be 128 KiB)."""
    return [
        {"loc": list(e.get("loc", ())), "type": e.get("type"), "msg": e.get("msg")} for e in errors
    ]


def _json_loads(text: str | bytes) -> Any:
    """``json.loads`` that refuses NaN/Infinity and turns absurd nesting into a parse error
    (Powertools maps only ``JSONDecodeError`` to a client error)."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError as exc:
        doc = text if isinstance(text, str) else text.decode("utf-8", "replace")
        raise json.JSONDecodeError("JSON nested too deeply", doc, 0) from exc


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)


# --- the app --------------------------------------------------------------------------------


class TaskApi(APIGatewayHttpResolver):
    """The resolver plus the checks that must happen before the body is parsed."""

    _openapi: str | None = None

    def openapi_document(self) -> str:
        """The OpenAPI document of the routes (built once)."""
        if self._openapi is None:
            self._openapi = self.get_openapi_json_schema(
                title="taskmanager",
                version="1",
                description="Long-running tasks behind short-lived HTTP gateways.",
            )
        return self._openapi

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        refusal = _precheck(event)
        if refusal is not None:
            return refusal
        return super().resolve(event, context)


def _precheck(event: Mapping[str, Any]) -> dict[str, Any] | None:  # noqa: PLR0911
    """413 over the body limit, 400 for a body that is not UTF-8 (or bad base64), 415 for a
    body that is not JSON: decided on the raw event, before anything parses it."""
    body = event.get("body")
    if not body:
        return None
    if len(body) > MAX_BODY_BYTES * 4 // 3 + 4:  # even base64 cannot make this fit
        return _refusal(413, "PAYLOAD_TOO_LARGE", len(body))
    raw: bytes
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return _raw_error(400, "INVALID_REQUEST", "body is not valid base64")
    else:
        raw = body.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_BODY_BYTES:
        return _refusal(413, "PAYLOAD_TOO_LARGE", len(raw))
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return _raw_error(400, "INVALID_REQUEST", "body is not UTF-8")
    method = event.get("requestContext", {}).get("http", {}).get("method", "")
    if method.upper() in _BODY_METHODS:
        headers = event.get("headers") or {}
        content_type = next(
            (v for k, v in headers.items() if k.lower() == "content-type"), ""
        ).lower()
        media = content_type.split(";", 1)[0].strip()
        if media != JSON and not (media.startswith("application/") and media.endswith("+json")):
            return _raw_error(
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                "send the body as application/json",
                {"content_type": content_type or None},
            )
    return None


def _refusal(status: int, code: str, size: int) -> dict[str, Any]:
    return _raw_error(
        status,
        code,
        f"request body is {size} bytes; the limit is {MAX_BODY_BYTES} bytes",
        {"field": "body", "size": size, "limit": MAX_BODY_BYTES},
    )


def _raw_error(status: int, code: str, message: str, details: Any = None) -> dict[str, Any]:
    """A payload v2 response built without the resolver (it must not see this request)."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": JSON},
        "cookies": [],
        "body": json.dumps({"error": {"code": code, "message": message, "details": details}}),
        "isBase64Encoded": False,
    }


def _task_response(task: Task, status: int, headers: dict[str, str] | None = None) -> Response[str]:
    headers = headers or {}
    if not task.is_terminal:
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return Response(
        status_code=status,
        content_type=JSON,
        body=task_resource(task).model_dump_json(),
        headers=headers,
    )


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
) -> TaskApi:
    """The task API's routes over the dependencies ``deps_provider()`` returns (called per
    request, so it should be cached); ``owner`` names the caller from the request."""
    app = TaskApi(enable_validation=True, json_body_deserializer=_json_loads)

    def caller() -> str:
        name = owner(app.current_event)
        if name is None:
            raise UnauthenticatedError("the request carries no caller identity")
        return name

    @app.post(
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
        try:
            result = services.submit_task(
                command,
                owner=caller(),
                repo=deps.repo,
                clock=deps.clock,
                ids=deps.ids,
                policy=deps.policy,
                idempotency_key=idempotency_key,
            )
        except InvalidRequestError as exc:
            field = (exc.details or {}).get("field") if isinstance(exc.details, dict) else None
            if field in _SUBMIT_FIELDS and not isinstance(exc, PayloadTooLargeError):
                return error_response(422, exc.code, exc.message, exc.details)
            raise
        headers = {"Location": f"/tasks/{result.task.id}"}
        if result.replayed:
            headers["Idempotent-Replayed"] = "true"
        return _task_response(result.task, 202, headers)

    @app.get(
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

    @app.get(
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

    @app.post(
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

    @app.get("/openapi.json", include_in_schema=False)
    def openapi() -> Response[str]:
        return Response(status_code=200, content_type=JSON, body=app.openapi_document())

    def domain_error(exc: TaskManagerError) -> Response[str]:
        status = _STATUS_BY_CODE.get(exc.code)
        if status is None:
            status = 401 if isinstance(exc, UnauthenticatedError) else 500
            if isinstance(exc, InvalidRequestError):
                status = 400
        if status >= 500:
            logger.error("request failed: %s", exc.code, exc_info=exc)
        return error_response(status, exc.code, exc.message, exc.details)

    def invalid_request(exc: RequestValidationError) -> Response[str]:
        errors = list(exc.errors())
        status, message = _validation_status(errors)
        return error_response(status, "INVALID_REQUEST", message, _public_errors(errors))

    def no_route(_exc: NotFoundError) -> Response[str]:
        event = app.current_event
        method, path = event.http_method.upper(), event.path
        allowed = sorted(
            r.method for r in (*app._static_routes, *app._dynamic_routes) if r.rule.match(path)
        )
        if allowed:
            return error_response(
                405,
                "METHOD_NOT_ALLOWED",
                f"{method} is not allowed on {path}",
                {"allowed": allowed},
                {"Allow": ", ".join(allowed)},
            )
        return error_response(404, "ROUTE_NOT_FOUND", f"no route {method} {path}")

    def unexpected(exc: Exception) -> Response[str]:
        logger.error("unexpected error", exc_info=exc)
        return error_response(500, "INTERNAL_ERROR", "the request could not be completed")

    app.exception_handler_manager.update_exception_handlers(
        {
            TaskManagerError: domain_error,
            RequestValidationError: invalid_request,
            NotFoundError: no_route,
            Exception: unexpected,
        }
    )
    return app


# --- Lambda ---------------------------------------------------------------------------------


def _correlation(event: Mapping[str, Any]) -> str | None:
    request_id = event["requestContext"]["requestId"]
    return str(request_id) if request_id else None


@functools.cache
def _lambda_handler() -> Callable[[Any, Any], Any]:
    from taskmanager.entrypoints import bootstrap, observability  # noqa: PLC0415

    owner = OWNER_RESOLVERS[bootstrap.settings().owner_claim]
    app = create_app(bootstrap.aws_dependencies, owner=owner)

    def resolve(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        response = app.resolve(event, context)
        headers = response.get("headers") or {}
        if (
            response["statusCode"] == 202
            and event.get("rawPath") == "/tasks"
            and "Idempotent-Replayed" not in headers
        ):
            observability.count(observability.TASKS_SUBMITTED)
        return response

    return observability.instrument(resolve, _correlation)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The API Lambda: API Gateway HTTP API (payload v2) events."""
    response: dict[str, Any] = _lambda_handler()(event, context)
    return response
