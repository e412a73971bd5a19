"""The WebSocket API's function (docs/push.md, "On AWS"): ``$connect``, ``$disconnect`` and
the protocol's messages (routes ``subscribe``, ``unsubscribe``, ``submit`` and
``$default``), answered on the same route (API Gateway sends the returned ``body`` to the
client).

- ``$connect``: the caller's identity (IAM, or the request authorizer's ``principalId`` for
  JWT; ``TASKMANAGER_OWNER_CLAIM``) is recorded with the connection; none refuses it (401).
- A message: the owner recorded at ``$connect``, then the domain's :func:`answer`; every
  failure is an ``error`` message, never a 5xx, and the connection stays open.
- ``$disconnect``: the connection and its subscriptions are deleted.
"""

from __future__ import annotations

import base64
import binascii
import functools
from typing import TYPE_CHECKING, Any

from taskmanager.domain.errors import TaskManagerError
from taskmanager.domain.push import answer, error_message, parse_client_message, request_id_of
from taskmanager.entrypoints import observability as obs
from taskmanager.entrypoints.http_errors import UnauthenticatedError, internal_error

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from taskmanager.adapters.dynamodb.connections import DynamoDBConnections
    from taskmanager.entrypoints.bootstrap import Dependencies
    from taskmanager.entrypoints.http.owners import OwnerResolver


def _frame(event: Mapping[str, Any]) -> str | bytes:
    body = event.get("body") or ""
    if not event.get("isBase64Encoded"):
        return str(body)
    try:
        return base64.b64decode(body)
    except (binascii.Error, ValueError):
        return b""


def create_handler(
    deps_provider: Callable[[], Dependencies],
    connections_provider: Callable[[], DynamoDBConnections],
    *,
    owner: OwnerResolver,
) -> Callable[[Mapping[str, Any], Any], dict[str, Any]]:
    log = obs.logger()

    def reply(connection_id: str, raw: str | bytes) -> str:
        try:
            message = parse_client_message(raw)
        except TaskManagerError as exc:
            obs.count(obs.PUSH_MALFORMED)
            return error_message(exc, request_id_of(raw)).model_dump_json()
        try:
            connections = connections_provider()
            name = connections.owner_of(connection_id)
            if name is None:
                raise UnauthenticatedError("this connection is not known (expired?): reconnect")
            subscriptions = connections.subscriptions(connection_id, name)
            result = answer(message, owner=name, subscriptions=subscriptions, deps=deps_provider())
        except TaskManagerError as exc:
            return error_message(exc, message.request_id).model_dump_json()
        except Exception as exc:  # a bug: said, logged, and the socket stays open
            failure = internal_error(exc, "the server failed; see its log")
            return error_message(failure, message.request_id).model_dump_json()
        if result.created is not None:
            obs.count(obs.TASKS_SUBMITTED)
        return result.message.model_dump_json()

    def handle(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        request = event["requestContext"]
        route, connection_id = request.get("routeKey"), str(request["connectionId"])
        if route == "$connect":
            name = owner(event)
            if name is None:
                log.warning("connect refused: no caller identity")
                return {"statusCode": 401}
            connections_provider().open(connection_id, name)
            return {"statusCode": 200}
        if route == "$disconnect":
            connections_provider().forget(connection_id)
            return {"statusCode": 200}
        return {"statusCode": 200, "body": reply(connection_id, _frame(event))}

    return handle


@functools.cache
def _lambda_handler() -> Callable[[Any, Any], Any]:
    from taskmanager.entrypoints import bootstrap  # noqa: PLC0415
    from taskmanager.entrypoints.http.owners import WEBSOCKET_OWNER_RESOLVERS  # noqa: PLC0415

    owner = WEBSOCKET_OWNER_RESOLVERS[bootstrap.settings().owner_claim]
    handle = create_handler(bootstrap.aws_dependencies, bootstrap.connections, owner=owner)
    return obs.instrument(handle, obs.request_id)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The sockets Lambda: API Gateway WebSocket API events."""
    result: dict[str, Any] = _lambda_handler()(event, context)
    return result


__all__ = ["create_handler", "handler"]
