"""The push WebSocket's request authorizer for JWT deployments (docs/push.md, "On AWS").

Browsers cannot set headers on a WebSocket, so the token comes in the connect URL
(``?token=...``); API Gateway's JWT authorizer exists for HTTP APIs only, so this function
checks it (:class:`~taskmanager.adapters.jwks.JwtVerifier`: RS256 signature by the
issuer's keys, issuer, audience, expiry, scopes) and answers with an IAM policy: Allow with
the token's ``sub`` as ``principalId`` (the owner the sockets function records), or Deny
(the handshake is refused with 403; a refusal is not an error of the function).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from taskmanager.adapters.jwks import InvalidTokenError
from taskmanager.entrypoints import observability as obs

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from taskmanager.adapters.jwks import JwtVerifier


def _policy(principal: str, effect: str, resource: str) -> dict[str, Any]:
    return {
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
    }


def create_handler(
    verifier_provider: Callable[[], JwtVerifier],
) -> Callable[[Mapping[str, Any], Any], dict[str, Any]]:
    log = obs.logger()

    def handle(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        resource = str(event.get("methodArn", ""))
        token = (event.get("queryStringParameters") or {}).get("token") or ""
        try:
            claims = verifier_provider().claims(str(token))
        except InvalidTokenError as exc:
            log.info("connect refused: %s", exc.message)
            return _policy("anonymous", "Deny", resource)
        return _policy(str(claims["sub"]), "Allow", resource)

    return handle


@functools.cache
def _lambda_handler() -> Callable[[Any, Any], Any]:
    from taskmanager.entrypoints import bootstrap  # noqa: PLC0415

    return obs.instrument(create_handler(bootstrap.jwt_verifier), obs.request_id)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The push WebSocket's REQUEST authorizer Lambda ($connect with ``?token=``)."""
    result: dict[str, Any] = _lambda_handler()(event, context)
    return result
