"""Faults injected under botocore's retry handler, on a real client against moto server.

A handler on the client's ``before-send`` event runs where botocore would put the request on
the wire, inside its retry loop: whatever it makes of an attempt (an error answer, a lost
answer), botocore's own retry handler sees, exactly as it sees a fault of the service or
the network. (On moto in-process, moto's own ``before-send`` handler would still apply the
request: these helpers are for moto server.)
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import botocore.endpoint
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.exceptions import ConnectionClosedError
from botocore.httpsession import URLLib3Session

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import pytest
    from botocore.awsrequest import AWSPreparedRequest


def record_backoffs(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays botocore's retry handler waits between attempts, recorded instead of
    slept (``botocore.endpoint`` sleeps through its ``time`` module)."""
    delays: list[float] = []
    monkeypatch.setattr(botocore.endpoint, "time", SimpleNamespace(sleep=delays.append))
    return delays


class _Attempts:
    """Counts ``calls`` (what the caller asked of the client) and ``attempts`` (what
    botocore sent) of one operation; ``_fault`` decides what becomes of an attempt."""

    def __init__(self, client: Any, operation: str) -> None:
        self.calls = 0
        self.attempts = 0
        service = client.meta.service_model.service_id.hyphenize()
        client.meta.events.register(f"before-call.{service}.{operation}", self._call)
        client.meta.events.register_first(f"before-send.{service}.{operation}", self._send)

    def _call(self, **_: Any) -> None:
        self.calls += 1

    def _send(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        self.attempts += 1
        return self._fault(request)

    def _fault(self, request: AWSPreparedRequest) -> AWSResponse | None:
        return None  # botocore sends it itself


class CountedAttempts(_Attempts):
    """No fault: only the counts."""


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.data


class FailedAttempts(_Attempts):
    """The first attempts of ``operation`` never reach the server: each is answered with the
    next of ``errors`` (an error code and its HTTP status), as the service answers a
    throttled or failed request (JSON protocols: DynamoDB, EventBridge). Later attempts go
    out as usual."""

    def __init__(self, client: Any, operation: str, errors: list[tuple[str, int]]) -> None:
        super().__init__(client, operation)
        self.errors = list(errors)

    def _fault(self, request: AWSPreparedRequest) -> AWSResponse | None:
        if not self.errors:
            return None
        code, status = self.errors.pop(0)
        body = json.dumps({"__type": code, "message": "injected"}).encode()
        headers = HTTPHeaders()
        headers["x-amzn-RequestId"] = "injected"
        return AWSResponse(request.url, status, headers, _Body(body))


class LostAnswers(_Attempts):
    """The first ``count`` attempts of ``operation`` reach the server (moto server, over
    HTTP, the request botocore signed) and are applied there; their answers are lost: botocore
    sees the connection close before a response (``ConnectionClosedError``), a transient
    fault it retries. ``after_write`` runs between the write and the lost answer (another
    client's change landing before the retry). Later attempts go out as usual."""

    def __init__(
        self,
        client: Any,
        operation: str,
        *,
        count: int = 1,
        after_write: Callable[[AWSPreparedRequest], None] | None = None,
    ) -> None:
        super().__init__(client, operation)
        self.left = count
        self.after_write = after_write

    def _fault(self, request: AWSPreparedRequest) -> AWSResponse | None:
        if self.left <= 0:
            return None
        self.left -= 1
        http = URLLib3Session()
        try:
            http.send(request)  # the server applies it; its answer is dropped
        finally:
            http.close()
        if self.after_write is not None:
            self.after_write(request)
        raise ConnectionClosedError(endpoint_url=request.url, request=request)


class PartialBatchReads(_Attempts):
    """Each ``BatchGetItem`` answer reads at most ``per_answer`` keys of a table and returns
    the rest in ``UnprocessedKeys``, as DynamoDB does past its 16 MB answer limit or when some
    partitions are throttled (a successful answer, which botocore does not retry). The keys
    that are read go to the server (moto server, over HTTP) in a request of their own."""

    def __init__(self, client: Any, per_answer: int) -> None:
        super().__init__(client, "BatchGetItem")
        self.per_answer = per_answer

    def _fault(self, request: AWSPreparedRequest) -> AWSResponse | None:
        asked = json.loads(cast("bytes", request.body))
        unprocessed: dict[str, Any] = {}
        for table, wanted in list(asked["RequestItems"].items()):
            if len(wanted["Keys"]) > self.per_answer:
                unprocessed[table] = {**wanted, "Keys": wanted["Keys"][self.per_answer :]}
                wanted["Keys"] = wanted["Keys"][: self.per_answer]
            if not wanted["Keys"]:
                del asked["RequestItems"][table]
        if not unprocessed:
            return None
        answer: dict[str, Any] = {"Responses": {}}
        if asked["RequestItems"]:
            request.body = json.dumps(asked).encode()
            request.headers["Content-Length"] = str(len(request.body))
            http = URLLib3Session()
            try:
                # moto server checks no signature, so the shortened request goes as it is.
                answer = json.loads(http.send(request).content)
            finally:
                http.close()
        answer["UnprocessedKeys"] = unprocessed
        headers = HTTPHeaders()
        headers["x-amzn-RequestId"] = "partial"
        return AWSResponse(request.url, 200, headers, _Body(json.dumps(answer).encode()))
