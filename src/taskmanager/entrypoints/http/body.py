"""The request body: checks on its raw bytes before anything parses it, and the one JSON
decoder that parses it.

413 over the body limit, 400 for a body that is not UTF-8 (or not valid base64 in an API
Gateway event), 415 for a body that is not JSON: decided first, the same for an API
Gateway event (:func:`check_event_body`) and a local request (:func:`check_body`).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING, Any, Final

from taskmanager.domain.errors import InvalidRequestError
from taskmanager.domain.model import MAX_PAYLOAD_BYTES
from taskmanager.entrypoints.http_errors import (
    JSON,
    BodyTooLargeError,
    UnsupportedMediaTypeError,
    error_response,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aws_lambda_powertools.event_handler import Response

#: A request body larger than this is refused with 413 before it is parsed: the largest
#: legal body is a 128 KiB input plus the few other fields of ``SubmitTask``.
MAX_BODY_BYTES: Final = MAX_PAYLOAD_BYTES + 8 * 1024
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})


def check_body(method: str, headers: Mapping[str, str], raw: bytes) -> Response[str] | None:
    """The refusal of a body over the limit, not UTF-8 or not JSON; ``None`` for a body
    that may be parsed. ``headers`` lower-case."""
    if not raw:
        return None
    if len(raw) > MAX_BODY_BYTES:
        return error_response(BodyTooLargeError(MAX_BODY_BYTES, len(raw)))
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return error_response(InvalidRequestError("body is not UTF-8"))
    if method.upper() in _BODY_METHODS:
        content_type = headers.get("content-type", "").lower()
        media = content_type.split(";", 1)[0].strip()
        if media != JSON and not (media.startswith("application/") and media.endswith("+json")):
            return error_response(UnsupportedMediaTypeError(content_type))
    return None


def check_event_body(event: Mapping[str, Any]) -> Response[str] | None:
    """:func:`check_body` on an API Gateway payload v2 event's body (base64 or text)."""
    body = event.get("body")
    if not body:
        return None
    if len(body) > MAX_BODY_BYTES * 4 // 3 + 4:  # even base64 cannot make this fit
        return error_response(BodyTooLargeError(MAX_BODY_BYTES, len(body)))
    raw: bytes
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return error_response(InvalidRequestError("body is not valid base64"))
    else:
        raw = body.encode("utf-8", "surrogatepass")
    method = event.get("requestContext", {}).get("http", {}).get("method", "")
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    return check_body(method, headers, raw)


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)


#: One decoder for every body: ``json.loads`` with an option builds a decoder per call.
_DECODER: Final = json.JSONDecoder(parse_constant=_refuse_constant)


def parse_json(text: str) -> Any:
    """``json.loads`` that refuses NaN/Infinity and turns absurd nesting into a parse error
    (``json.JSONDecodeError`` either way)."""
    try:
        return _DECODER.decode(text)
    except RecursionError as exc:
        raise json.JSONDecodeError("JSON nested too deeply", text, 0) from exc
