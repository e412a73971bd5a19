"""Network faults injected under botocore's retry handler, on a real client.

A handler on the client's ``before-send`` event runs where botocore would put the request on
the wire, inside its retry loop: whatever it makes of an attempt (a lost answer), botocore's
own retry handler sees, exactly as it sees a fault of the network.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ConnectionClosedError
from botocore.httpsession import URLLib3Session

if TYPE_CHECKING:
    from collections.abc import Callable

    from botocore.awsrequest import AWSPreparedRequest


class LostAnswers:
    """The first ``count`` attempts of ``operation`` reach the server (moto server, over
    HTTP, the request botocore signed) and are applied there; their answers are lost: botocore
    sees the connection close before a response (``ConnectionClosedError``), a transient
    fault it retries. ``after_write`` runs between the write and the lost answer (another
    client's change landing before the retry). Later attempts go out as usual.

    ``attempts`` counts what botocore sent; ``calls`` what the caller asked of the client.
    """

    def __init__(
        self,
        client: Any,
        operation: str,
        *,
        count: int = 1,
        after_write: Callable[[AWSPreparedRequest], None] | None = None,
    ) -> None:
        self.left = count
        self.after_write = after_write
        self.attempts = 0
        self.calls = 0
        service = client.meta.service_model.service_id.hyphenize()
        client.meta.events.register(f"before-call.{service}.{operation}", self._call)
        client.meta.events.register_first(f"before-send.{service}.{operation}", self._send)

    def _call(self, **_: Any) -> None:
        self.calls += 1

    def _send(self, request: AWSPreparedRequest, **_: Any) -> None:
        self.attempts += 1
        if self.left <= 0:
            return  # botocore sends it itself
        self.left -= 1
        http = URLLib3Session()
        try:
            http.send(request)  # the server applies it; its answer is dropped
        finally:
            http.close()
        if self.after_write is not None:
            self.after_write(request)
        raise ConnectionClosedError(endpoint_url=request.url, request=request)
