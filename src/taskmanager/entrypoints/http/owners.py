"""Who the caller is (docs/design.md §5: callers are isolated), from the API Gateway event's
authorizer: an IAM principal or a JWT ``sub``; locally, one fixed owner.

``TASKMANAGER_OWNER_CLAIM`` picks the resolver by its name in :data:`OWNER_RESOLVERS`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    #: Names the caller from the API Gateway event the request came in (``{}`` locally).
    OwnerResolver = Callable[[Mapping[str, Any]], str | None]


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


#: The resolver of each ``TASKMANAGER_OWNER_CLAIM``.
OWNER_RESOLVERS: Final[dict[str, OwnerResolver]] = {
    "iam": iam_owner,
    "iam_session": iam_session_owner,
    "jwt_sub": jwt_sub_owner,
}


# --- WebSocket API (API Gateway's REST-style request context) ------------------------------


def _websocket_iam(event: Mapping[str, Any], *, keep_session: bool) -> str | None:
    """The IAM identity of a WebSocket ``$connect`` (``AWS_IAM``): the same rules as on HTTP,
    read from ``requestContext.identity``, where a WebSocket API puts the caller."""
    identity = event.get("requestContext", {}).get("identity") or {}
    view = {
        "requestContext": {
            "authorizer": {
                "iam": {
                    "userArn": identity.get("userArn"),
                    "cognitoIdentity": {"identityId": identity.get("cognitoIdentityId")},
                }
            }
        }
    }
    return _iam_identity(view, keep_session=keep_session)


def websocket_jwt_owner(event: Mapping[str, Any]) -> str | None:
    """The ``principalId`` a request authorizer returned for the connect: the token's
    ``sub``, the one it verified."""
    authorizer = event.get("requestContext", {}).get("authorizer") or {}
    sub = authorizer.get("principalId")
    return sub if isinstance(sub, str) and sub else None


#: The WebSocket ``$connect`` resolver of each ``TASKMANAGER_OWNER_CLAIM``: the same owner
#: as the HTTP API names for the same caller.
WEBSOCKET_OWNER_RESOLVERS: Final[dict[str, OwnerResolver]] = {
    "iam": lambda event: _websocket_iam(event, keep_session=False),
    "iam_session": lambda event: _websocket_iam(event, keep_session=True),
    "jwt_sub": websocket_jwt_owner,
}
