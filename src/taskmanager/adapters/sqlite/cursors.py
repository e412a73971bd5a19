"""List cursors: where the next page starts, signed so that no client can alter or forge one.

A cursor is ``<payload>.<mac>``, both base64url without padding: the payload is the JSON
array ``[created_at, id]`` of the last task of the page, the MAC the first 16 bytes of an
HMAC-SHA256 over the owner, ``created_at`` and ``id``, keyed with the random ``cursor_key``
kept in the file. A cursor that was edited, forged, or issued to another owner or by another
file is refused with ``InvalidCursorError``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json

from taskmanager.domain.errors import InvalidCursorError


def _cursor_mac(key: bytes, owner: str, created: str, task_id: str) -> bytes:
    # surrogatepass: a tampered cursor may decode to a lone surrogate; it must fail the
    # comparison (400), not the encoding (500).
    message = f"{owner}\x00{created}\x00{task_id}".encode("utf-8", "surrogatepass")
    return hmac.new(key, message, hashlib.sha256).digest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_cursor(key: bytes, owner: str, created: str, task_id: str) -> str:
    """The cursor of the page after the task ``(created, task_id)`` for ``owner``."""
    payload = json.dumps([created, task_id], separators=(",", ":"), ensure_ascii=False)
    return _b64(payload.encode()) + "." + _b64(_cursor_mac(key, owner, created, task_id))


def decode_cursor(key: bytes, cursor: str, owner: str) -> tuple[str, str]:
    """The ``(created_at, id)`` a cursor of ``owner`` continues after, once its MAC checks
    out; ``InvalidCursorError`` for anything else."""
    try:
        payload_b64, mac_b64 = cursor.split(".")
        payload, mac = _unb64(payload_b64), _unb64(mac_b64)
        created, task_id = json.loads(payload)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidCursorError from exc
    if not isinstance(created, str) or not isinstance(task_id, str):
        raise InvalidCursorError
    if not hmac.compare_digest(mac, _cursor_mac(key, owner, created, task_id)):
        raise InvalidCursorError
    return created, task_id
