"""The push WebSocket's JWT request authorizer: tokens signed with real RSA keys
(``cryptography``), checked as API Gateway's JWT authorizer would check them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from taskmanager.adapters.jwks import InvalidTokenError, JwtVerifier
from taskmanager.entrypoints.authorizer import create_handler

ISSUER = "https://issuer.example.com"
ARN = "arn:aws:execute-api:eu-west-1:123456789012:abc123/live/$connect"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, str]:
    numbers = key.public_key().public_numbers()
    size = (numbers.n.bit_length() + 7) // 8
    return {
        "kty": "RSA",
        "kid": kid,
        "use": "sig",
        "alg": "RS256",
        "n": _b64(numbers.n.to_bytes(size, "big")),
        "e": _b64(numbers.e.to_bytes(3, "big")),
    }


def _token(
    key: rsa.RSAPrivateKey, claims: dict[str, Any], kid: str = "k1", alg: str = "RS256"
) -> str:
    header = _b64(json.dumps({"alg": alg, "kid": kid, "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims).encode())
    signed = f"{header}.{payload}".encode()
    signature = key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{payload}.{_b64(signature)}"


class Issuer:
    """The issuer's published keys, as its OpenID configuration serves them."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.keys = [_jwk(self.key, "k1")]
        self.reads = 0

    def fetch(self, url: str) -> Any:
        if url == f"{ISSUER}/.well-known/openid-configuration":
            return {"issuer": ISSUER, "jwks_uri": f"{ISSUER}/keys"}
        assert url == f"{ISSUER}/keys", url
        self.reads += 1
        return {"keys": self.keys}

    def claims(self, **extra: Any) -> dict[str, Any]:
        return {"iss": ISSUER, "aud": "tasks", "sub": "user-7", "exp": time.time() + 300, **extra}


@pytest.fixture
def issuer() -> Issuer:
    return Issuer()


def _authorize(
    issuer: Issuer, token: str | None, scopes: frozenset[str] = frozenset()
) -> dict[str, Any]:
    verifier = JwtVerifier(ISSUER, frozenset({"tasks"}), scopes, fetch=issuer.fetch)
    query = None if token is None else {"token": token}
    event = {"methodArn": ARN, "queryStringParameters": query, "requestContext": {"requestId": "r"}}
    return create_handler(lambda: verifier)(event, None)


def _effect(answer: dict[str, Any]) -> str:
    (statement,) = answer["policyDocument"]["Statement"]
    assert statement["Resource"] == ARN
    assert statement["Action"] == "execute-api:Invoke"
    return str(statement["Effect"])


def test_a_valid_token_is_allowed_as_its_sub(issuer: Issuer) -> None:
    answer = _authorize(issuer, _token(issuer.key, issuer.claims()))
    assert _effect(answer) == "Allow"
    assert answer["principalId"] == "user-7"


def test_a_cognito_access_token_is_matched_by_its_client_id(issuer: Issuer) -> None:
    claims = issuer.claims(client_id="tasks")
    del claims["aud"]
    assert _effect(_authorize(issuer, _token(issuer.key, claims))) == "Allow"


@pytest.mark.parametrize(
    "change",
    [
        {"exp": 0},
        {"exp": None},
        {"nbf": 4_000_000_000},
        {"iss": "https://evil.example.com"},
        {"aud": "other"},
        {"sub": ""},
    ],
    ids=["expired", "no-exp", "not-yet", "issuer", "audience", "no-sub"],
)
def test_a_token_breaking_a_claim_rule_is_denied(issuer: Issuer, change: dict[str, Any]) -> None:
    claims = {k: v for k, v in {**issuer.claims(), **change}.items() if v is not None}
    answer = _authorize(issuer, _token(issuer.key, claims))
    assert _effect(answer) == "Deny"
    assert answer["principalId"] == "anonymous"


def test_a_token_signed_by_another_key_is_denied(issuer: Issuer) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert _effect(_authorize(issuer, _token(stranger, issuer.claims()))) == "Deny"


def test_a_tampered_token_is_denied(issuer: Issuer) -> None:
    header, _, signature = _token(issuer.key, issuer.claims()).split(".")
    forged = _b64(json.dumps(issuer.claims(sub="admin")).encode())
    assert _effect(_authorize(issuer, f"{header}.{forged}.{signature}")) == "Deny"


def test_alg_none_and_hs256_with_the_public_key_are_denied(issuer: Issuer) -> None:
    claims = _b64(json.dumps(issuer.claims()).encode())
    none = _b64(json.dumps({"alg": "none", "kid": "k1"}).encode())
    assert _effect(_authorize(issuer, f"{none}.{claims}.")) == "Deny"
    hs = _b64(json.dumps({"alg": "HS256", "kid": "k1"}).encode())
    secret = json.dumps(issuer.keys[0]).encode()
    mac = hmac.new(secret, f"{hs}.{claims}".encode(), hashlib.sha256).digest()
    assert _effect(_authorize(issuer, f"{hs}.{claims}.{_b64(mac)}")) == "Deny"


@pytest.mark.parametrize("token", [None, "", "a.b", "x" * 9000, "!!.??.**"])
def test_a_missing_or_malformed_token_is_denied(issuer: Issuer, token: str | None) -> None:
    assert _effect(_authorize(issuer, token)) == "Deny"


def test_required_scopes_need_one_of_them(issuer: Issuer) -> None:
    scopes = frozenset({"tasks/read", "tasks/write"})
    without = _token(issuer.key, issuer.claims(scope="profile"))
    assert _effect(_authorize(issuer, without, scopes)) == "Deny"
    with_one = _token(issuer.key, issuer.claims(scope="profile tasks/read"))
    assert _effect(_authorize(issuer, with_one, scopes)) == "Allow"


def test_keys_under_2048_bits_are_refused(issuer: Issuer) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    issuer.keys = [_jwk(small, "k1")]
    assert _effect(_authorize(issuer, _token(small, issuer.claims()))) == "Deny"
    verifier = JwtVerifier(ISSUER, frozenset({"tasks"}), fetch=issuer.fetch)
    with pytest.raises(InvalidTokenError, match="1024 bits"):  # refused for its size
        verifier.claims(_token(small, issuer.claims()))


def test_an_unknown_key_id_reads_the_keys_again_at_most_once_a_minute(issuer: Issuer) -> None:
    now = [1000.0]
    verifier = JwtVerifier(ISSUER, frozenset({"tasks"}), fetch=issuer.fetch, clock=lambda: now[0])
    claims = issuer.claims()  # expiry is checked against the system clock
    verifier.claims(_token(issuer.key, claims))
    assert issuer.reads == 1
    rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issuer.keys.append(_jwk(rotated, "k2"))
    with pytest.raises(Exception, match="key id"):  # read a moment ago: not again yet
        verifier.claims(_token(rotated, claims, kid="k2"))
    assert issuer.reads == 1
    now[0] += 61
    assert verifier.claims(_token(rotated, claims, kid="k2"))["sub"] == "user-7"
    assert issuer.reads == 2
