"""How the client SDK authenticates: a bearer token (JWT deployments) or AWS Signature
Version 4 (IAM deployments), for HTTP requests and for the push socket's connect URL."""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


class Auth(Protocol):
    def headers(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> dict[str, str]:
        """Headers to add to this request."""
        ...


class BearerAuth:
    """``Authorization: Bearer <token>`` (an HTTP API with a JWT authorizer); on a
    WebSocket, ``?token=<token>`` (browsers cannot set a handshake's headers, so the
    deployment's authorizer reads the query string)."""

    def __init__(self, token: str | Callable[[], str]) -> None:
        self._token = token

    def headers(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}

    def token(self) -> str:
        return self._token() if callable(self._token) else self._token

    def presign(self, url: str) -> str:
        separator = "&" if "?" in url else "?"
        return f"{url}{separator}{urllib.parse.urlencode({'token': self.token()})}"


class SigV4Auth:
    """Signs each request with AWS Signature Version 4 (an HTTP API with IAM
    authorization), using botocore's signer and the default credential chain unless a
    botocore/boto3 session is given."""

    def __init__(
        self, region: str | None = None, *, service: str = "execute-api", session: Any = None
    ) -> None:
        import botocore.session  # noqa: PLC0415 (only signed clients need botocore)

        self._session = session or botocore.session.get_session()
        self.region = region or self._session.get_config_variable("region")
        if not self.region:
            raise ValueError("SigV4Auth needs a region (argument or AWS configuration)")
        self.service = service

    def _credentials(self) -> Any:
        """The frozen credentials of the session's credential chain."""
        credentials = self._session.get_credentials()
        if credentials is None:
            raise RuntimeError("no AWS credentials found to sign the request")
        return credentials.get_frozen_credentials()

    def headers(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> dict[str, str]:
        from botocore.auth import SigV4Auth as Signer  # noqa: PLC0415
        from botocore.awsrequest import AWSRequest  # noqa: PLC0415

        request = AWSRequest(method=method, url=url, data=body or b"", headers=dict(headers))
        Signer(self._credentials(), self.service, self.region).add_auth(request)
        return {k: v for k, v in request.headers.items() if k.lower() not in _lower(headers)}

    def presign(self, url: str, expires: int = 300) -> str:
        """``url`` (``wss://``) signed in its query string (SigV4 query authentication): how
        a WebSocket connect to an ``AWS_IAM`` route is signed, since the handshake is a GET
        whose signature API Gateway reads from the query."""
        from botocore.auth import SigV4QueryAuth  # noqa: PLC0415
        from botocore.awsrequest import AWSRequest  # noqa: PLC0415

        scheme, rest = url.split("://", 1)
        request = AWSRequest(method="GET", url=f"https://{rest}")
        signer = SigV4QueryAuth(self._credentials(), self.service, self.region, expires=expires)
        signer.add_auth(request)
        return f"{scheme}://{str(request.url).split('://', 1)[1]}"


def _lower(headers: Mapping[str, str]) -> set[str]:
    return {k.lower() for k in headers}
