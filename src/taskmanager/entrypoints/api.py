"""The HTTP API (docs/design.md §5, docs/api.md): its routes, and the Lambda handler that
serves them.

``create_app(deps_provider, owner=...)`` declares every route once, as a plain function whose
annotated parameters (``Body``, ``Header``, ``Query``, path) say what it reads. Routes are
thin: read the request, call one use case, shape the response. The same table serves API
Gateway events in Lambda (:func:`handler`) and the local server (`taskmanager serve`).

What the routes stand on is beside this module, in :mod:`taskmanager.entrypoints.http`: who
the caller is (``owners``), the checks on the raw body (``body``), how parameters are read
and validated (``binding``) and the table that serves the routes both ways
(``route_table``). Every error's status is in :mod:`taskmanager.entrypoints.http_errors`.
"""

from __future__ import annotations

import functools
from http import HTTPStatus
from typing import TYPE_CHECKING, Annotated, Any, Final

from aws_lambda_powertools.event_handler import Response
from pydantic import BaseModel, ConfigDict

from taskmanager.domain import services
from taskmanager.domain.errors import TaskNotFoundError
from taskmanager.domain.events import TaskResource, task_resource, task_resource_json
from taskmanager.domain.model import (
    DEFAULT_LIST_LIMIT,
    MAX_LIST_LIMIT,
    SubmitTask,
    Task,
    TaskStatus,
)
from taskmanager.entrypoints import observability
from taskmanager.entrypoints.http.binding import Body, Header, Query
from taskmanager.entrypoints.http.owners import OWNER_RESOLVERS, iam_owner
from taskmanager.entrypoints.http.route_table import TaskApi, current_request
from taskmanager.entrypoints.http_errors import JSON, ErrorResponse, UnauthenticatedError

if TYPE_CHECKING:
    from collections.abc import Callable

    from taskmanager.entrypoints.bootstrap import Dependencies
    from taskmanager.entrypoints.http.owners import OwnerResolver

#: Seconds a client should wait before polling an open task again.
RETRY_AFTER_SECONDS: Final = 1
_RETRY_AFTER: Final = str(RETRY_AFTER_SECONDS)
#: Task ids are UUIDs; a longer path segment cannot name a task.
MAX_TASK_ID_LENGTH: Final = 64


class TaskPage(BaseModel):
    """One page of ``GET /tasks``: newest first; pass ``next_cursor`` back for the next."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    items: list[TaskResource]
    next_cursor: str | None


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
        name = owner(current_request().event)
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

    return app


# --- Lambda ---------------------------------------------------------------------------------


@functools.cache
def _lambda_handler() -> Callable[[Any, Any], Any]:
    from taskmanager.entrypoints import bootstrap  # noqa: PLC0415

    observability.require_powertools()  # before the routes use what older releases lack
    owner = OWNER_RESOLVERS[bootstrap.settings().owner_claim]
    app = create_app(bootstrap.aws_dependencies, owner=owner, count=observability.count)
    return observability.instrument(app.resolve, observability.request_id)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The API Lambda: API Gateway HTTP API (payload v2) events."""
    response: dict[str, Any] = _lambda_handler()(event, context)
    return response
