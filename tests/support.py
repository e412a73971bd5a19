"""Helpers shared by the handler tests: Lambda event fixtures from tests/events/*.json."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).parent / "events"
ALICE = "arn:aws:sts::123456789012:assumed-role/supplier/alice"


@functools.cache
def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return data


def load_event(name: str) -> dict[str, Any]:
    """A fresh copy of tests/events/<name>."""
    return copy.deepcopy(_load(name))


def http_event(
    method: str,
    path: str,
    body: str | bytes | None = None,
    *,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    owner: str | None = ALICE,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload v2) event as Lambda receives it, IAM-authorised."""
    event = load_event("api_submit.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["headers"] = {
        k: v for k, v in event["headers"].items() if k not in {"content-type", "content-length"}
    }
    if body is None:
        event.pop("body")
    else:
        event["headers"]["content-type"] = "application/json"
        if isinstance(body, bytes):
            import base64

            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
        else:
            event["body"] = body
    event["headers"].update({k.lower(): v for k, v in (headers or {}).items()})
    if query:
        event["queryStringParameters"] = query
        event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
    if owner is None:
        event["requestContext"].pop("authorizer")
    else:
        event["requestContext"]["authorizer"]["iam"]["userArn"] = owner
    return event
