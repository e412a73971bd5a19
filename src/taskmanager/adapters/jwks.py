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

The RSA check is the standard library's: the signature raised to the key's exponent must be
exactly the PKCS #1 v1.5 encoding of the token's SHA-256 digest, compared whole (nothing is
parsed out of the decrypted block), in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import threading
import time
import urllib.request
from typing import TYPE_CHECKING, Any, Final

from taskmanager.domain.errors import TaskManagerError

if TYPE_CHECKING:
    from collections.abc import Callable

#: DER of DigestInfo for SHA-256 (RFC 8017, section 9.2, note 1), before the digest itself.
_SHA256_PREFIX: Final = bytes.fromhex("3031300d060960864801650304020105000420")
#: The longest token read (bytes of its text): far above any issuer's.
MAX_TOKEN_BYTES: Final = 8192
#: Unknown key ids cause at most one read of the keys this often (seconds).
REFRESH_SECONDS: Final = 60.0


class InvalidTokenError(TaskManagerError):
    """The token is not one this issuer signed for these audiences, or no longer valid."""

    code = "UNAUTHENTICATED"


def _b64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidTokenError("token is not base64url") from None


def _json(part: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64(part))
    except ValueError:
        raise InvalidTokenError("token part is not JSON") from None
    if not isinstance(value, dict):
        raise InvalidTokenError("token part is not a JSON object")
    return value


def _fetch_json(url: str) -> Any:
    if not url.startswith("https://"):
        raise InvalidTokenError(f"refusing to read keys from {url}: not https")
    with urllib.request.urlopen(url, timeout=5) as reply:
        return json.loads(reply.read(1024 * 1024))


def rs256_valid(signed: bytes, signature: bytes, n: int, e: int) -> bool:
    """Whether ``signature`` is the RSASSA-PKCS1-v1_5 SHA-256 signature of ``signed`` by the
    key (``n``, ``e``)."""
    size = (n.bit_length() + 7) // 8
    if size < 256 or len(signature) != size:  # keys under 2048 bits are not accepted
        return False
    value = int.from_bytes(signature, "big")
    if value >= n:
        return False
    block = pow(value, e, n).to_bytes(size, "big")
    digest = _SHA256_PREFIX + hashlib.sha256(signed).digest()
    expected = b"\x00\x01" + b"\xff" * (size - len(digest) - 3) + b"\x00" + digest
    return hmac.compare_digest(block, expected)


class JwtVerifier:
    """Verifies tokens of ``issuer`` for ``audiences`` (and ``scopes``, if any)."""

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
        self._keys: dict[str, tuple[int, int]] = {}
        self._read_at = -REFRESH_SECONDS
        self._lock = threading.Lock()

    def claims(self, token: str) -> dict[str, Any]:
        """The token's claims once every check passed; else :class:`InvalidTokenError`."""
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidTokenError("token is too long")
        parts = token.split(".")
        if len(parts) != 3:
            raise InvalidTokenError("token is not a signed JWT")
        header, claims = _json(parts[0]), _json(parts[1])
        if header.get("alg") != "RS256":
            raise InvalidTokenError(f"token algorithm {header.get('alg')!r} is not RS256")
        n, e = self._key(str(header.get("kid", "")))
        signed = f"{parts[0]}.{parts[1]}".encode()
        if not rs256_valid(signed, _b64(parts[2]), n, e):
            raise InvalidTokenError("token signature is not valid")
        self._check(claims)
        return claims

    def _check(self, claims: dict[str, Any]) -> None:
        now = self._clock()
        if str(claims.get("iss", "")).rstrip("/") != self.issuer:
            raise InvalidTokenError("token issuer is not the configured one")
        audience = claims.get("aud", [])
        audiences = {audience} if isinstance(audience, str) else set(audience or [])
        if isinstance(claims.get("client_id"), str):
            audiences.add(claims["client_id"])
        if not audiences & self.audiences:
            raise InvalidTokenError("token audience is not one of the configured ones")
        expires = claims.get("exp")
        if not isinstance(expires, int | float) or expires <= now:
            raise InvalidTokenError("token has expired (or has no exp)")
        not_before = claims.get("nbf")
        if isinstance(not_before, int | float) and not_before > now:
            raise InvalidTokenError("token is not valid yet")
        if self.scopes:
            granted = claims.get("scope", claims.get("scp", ""))
            names = set(granted.split()) if isinstance(granted, str) else set(granted or [])
            if not names & self.scopes:
                raise InvalidTokenError("token carries none of the required scopes")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise InvalidTokenError("token has no sub")

    def _key(self, kid: str) -> tuple[int, int]:
        with self._lock:
            if kid not in self._keys and self._clock() - self._read_at >= REFRESH_SECONDS:
                self._read_at = self._clock()
                self._keys = self._read_keys()
            key = self._keys.get(kid)
        if key is None:
            raise InvalidTokenError("token key id is not one of the issuer's")
        return key

    def _read_keys(self) -> dict[str, tuple[int, int]]:
        try:
            configuration = self._fetch(f"{self.issuer}/.well-known/openid-configuration")
            document = self._fetch(str(configuration["jwks_uri"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InvalidTokenError(f"cannot read the issuer's keys: {exc}") from exc
        keys = {}
        for key in document.get("keys", []):
            if key.get("kty") == "RSA" and key.get("use", "sig") == "sig" and "kid" in key:
                n = int.from_bytes(_b64(key["n"]), "big")
                e = int.from_bytes(_b64(key["e"]), "big")
                keys[str(key["kid"])] = (n, e)
        return keys
