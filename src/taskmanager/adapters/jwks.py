"""Verifies the JSON Web Tokens of an OpenID Connect issuer (RS256), with the issuer's
published keys: what the push WebSocket's request authorizer needs (docs/push.md, "On
AWS"), since API Gateway's own JWT authorizer exists for HTTP APIs only.

The checks are those of API Gateway's JWT authorizer: the signature (RS256 only: a token
naming any other algorithm, ``none`` and ``HS256`` included, is refused), ``iss`` equal to
the issuer, ``aud`` (or, for Cognito access tokens, ``client_id``) among the audiences,
``exp`` in the future and ``nbf`` (if any) in the past, and, when scopes are required, at
least one of them in ``scope``/``scp``. Keys come from the issuer's OpenID configuration
(``{issuer}/.well-known/openid-configuration`` → ``jwks_uri``), are kept for the life of the
process, and are read again (at most once a minute) for a key id not seen yet.

PyJWT (with ``cryptography``) parses the token and the keys, verifies the signature, and
checks the algorithm, the issuer, ``exp``, ``nbf`` and the RSA key's size (2048 bits at
least); this module adds what PyJWT does not know: the audience as API Gateway matches it
(``aud`` or ``client_id``), the scopes, a non-empty ``sub``, and when to read the keys.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import TYPE_CHECKING, Any, Final

import jwt

from taskmanager.domain.errors import TaskManagerError

if TYPE_CHECKING:
    from collections.abc import Callable

#: The only signature algorithm accepted.
ALGORITHMS: Final = ["RS256"]
#: The longest token read (bytes of its text): far above any issuer's.
MAX_TOKEN_BYTES: Final = 8192
#: Unknown key ids cause at most one read of the keys this often (seconds).
REFRESH_SECONDS: Final = 60.0


class InvalidTokenError(TaskManagerError):
    """The token is not one this issuer signed for these audiences, or no longer valid."""

    code = "UNAUTHENTICATED"


def _fetch_json(url: str) -> Any:
    if not url.startswith("https://"):
        raise InvalidTokenError(f"refusing to read keys from {url}: not https")
    with urllib.request.urlopen(url, timeout=5) as reply:
        return json.loads(reply.read(1024 * 1024))


class JwtVerifier:
    """Verifies tokens of ``issuer`` for ``audiences`` (and ``scopes``, if any).

    ``fetch`` reads a JSON document from a URL (the OpenID configuration, then the keys);
    ``clock`` paces those reads. Expiry is checked against the system clock, by PyJWT.
    """

    def __init__(
        self,
        issuer: str,
        audiences: frozenset[str],
        scopes: frozenset[str] = frozenset(),
        *,
        fetch: Callable[[str], Any] = _fetch_json,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.audiences = audiences
        self.scopes = scopes
        self._fetch = fetch
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._read_at = -REFRESH_SECONDS
        self._lock = threading.Lock()

    def claims(self, token: str) -> dict[str, Any]:
        """The token's claims once every check passed; else :class:`InvalidTokenError`."""
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidTokenError("token is too long")
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key(str(kid or "")),
                algorithms=ALGORITHMS,
                issuer=[self.issuer, f"{self.issuer}/"],  # with or without the trailing /
                options={
                    "require": ["exp", "iss", "sub"],
                    "verify_aud": False,  # aud or client_id: matched below, as API Gateway does
                    "enforce_minimum_key_length": True,  # RSA keys under 2048 bits: refused
                },
            )
        except jwt.PyJWTError as exc:
            raise InvalidTokenError(f"token refused: {exc}") from None
        self._check(claims)
        return claims

    def _check(self, claims: dict[str, Any]) -> None:
        audience = claims.get("aud", [])
        audiences = {audience} if isinstance(audience, str) else set(audience or [])
        if isinstance(claims.get("client_id"), str):
            audiences.add(claims["client_id"])
        if not audiences & self.audiences:
            raise InvalidTokenError("token audience is not one of the configured ones")
        if self.scopes:
            granted = claims.get("scope", claims.get("scp", ""))
            names = set(granted.split()) if isinstance(granted, str) else set(granted or [])
            if not names & self.scopes:
                raise InvalidTokenError("token carries none of the required scopes")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise InvalidTokenError("token has no sub")

    def _key(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            if kid not in self._keys and self._clock() - self._read_at >= REFRESH_SECONDS:
                self._read_at = self._clock()
                self._keys = self._read_keys()
            key = self._keys.get(kid)
        if key is None:
            raise InvalidTokenError("token key id is not one of the issuer's")
        return key

    def _read_keys(self) -> dict[str, jwt.PyJWK]:
        try:
            configuration = self._fetch(f"{self.issuer}/.well-known/openid-configuration")
            document = self._fetch(str(configuration["jwks_uri"]))
            published = list(document.get("keys", []))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidTokenError(f"cannot read the issuer's keys: {exc}") from exc
        keys = {}
        for key in published:
            if not isinstance(key, dict) or key.get("kty") != "RSA" or "kid" not in key:
                continue
            if key.get("use", "sig") != "sig":
                continue
            try:
                keys[str(key["kid"])] = jwt.PyJWK(key, algorithm=ALGORITHMS[0])
            except jwt.PyJWTError:
                continue  # a key PyJWT cannot read signs nothing we accept
        return keys
