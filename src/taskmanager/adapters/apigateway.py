"""Sends messages to API Gateway WebSocket connections (``PostToConnection`` of the
management API): the push protocol's ``Pusher`` port on AWS (docs/push.md, "On AWS").

A connection that is gone (``GoneException``, HTTP 410) is reported, not raised: the
notifier deletes its subscriptions. A throttled send (``LimitExceededException``,
``TooManyRequestsException``, HTTP 429) is tried again a bounded number of times here, with
backoff, then raises :class:`~taskmanager.domain.errors.PushError`, as does any other
failure: the caller hands the event back to its queue. The client is built without retries
of its own (``retries={"total_max_attempts": 1}``), so these attempts are the only ones.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from taskmanager.domain.errors import PushError

if TYPE_CHECKING:
    from collections.abc import Callable

_THROTTLED: Final = frozenset({"LimitExceededException", "TooManyRequestsException"})
_GONE: Final = frozenset({"GoneException"})
#: Attempts of one send when throttled, the first included; waits 0.1 s, then 0.2 s, ...
MAX_ATTEMPTS: Final = 4


class ConnectionPusher:
    """``PostToConnection`` through ``client`` (an ``apigatewaymanagementapi`` client on the
    API's ``https://{id}.execute-api.{region}.amazonaws.com/{stage}`` endpoint)."""

    def __init__(
        self,
        client: Any,
        *,
        max_attempts: int = MAX_ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._max_attempts = max_attempts
        self._sleep = sleep

    def push(self, connection_id: str, text: str) -> bool:
        data = text.encode()
        for attempt in range(1, self._max_attempts + 1):
            try:
                self._client.post_to_connection(ConnectionId=connection_id, Data=data)
            except ClientError as exc:
                error = exc.response.get("Error", {})
                code = str(error.get("Code", ""))
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if code in _GONE or status == 410:
                    return False
                if (code in _THROTTLED or status == 429) and attempt < self._max_attempts:
                    self._sleep(0.1 * 2 ** (attempt - 1))
                    continue
                raise PushError(
                    f"PostToConnection to {connection_id} failed after {attempt} "
                    f"attempt(s): {code or exc}",
                    details={"connection_id": connection_id, "code": code, "attempts": attempt},
                ) from exc
            except BotoCoreError as exc:
                raise PushError(
                    f"PostToConnection to {connection_id} failed: {exc}",
                    details={"connection_id": connection_id},
                ) from exc
            return True
        raise AssertionError("unreachable")  # pragma: no cover
