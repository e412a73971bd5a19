"""The committed JSON Schema file is exactly what the models say."""

from __future__ import annotations

import json
from pathlib import Path

from taskmanager.domain.events import OUTBOUND_DETAIL_TYPES
from taskmanager.domain.schema import render

CONTRACTS = Path(__file__).resolve().parents[2] / "schemas" / "contracts.json"


def test_committed_contracts_match_the_models() -> None:
    assert CONTRACTS.read_text(encoding="utf-8") == render(), (
        "schemas/contracts.json is out of date: run `make schema` and commit it"
    )


def test_contracts_cover_every_event_and_the_task_resource() -> None:
    schemas = json.loads(render())["schemas"]
    assert {"TaskResource", "SubmitTask", "TaskUpdated", "Event", *OUTBOUND_DETAIL_TYPES} <= set(
        schemas
    )
    mapping = schemas["Event"]["discriminator"]["mapping"]
    assert set(mapping) == {*OUTBOUND_DETAIL_TYPES, "TaskUpdated"}


PUSH = CONTRACTS.with_name("push.json")


def test_committed_push_protocol_schema_matches_the_models() -> None:
    assert PUSH.read_text(encoding="utf-8") == render("push"), (
        "schemas/push.json is out of date: run `make schema` and commit it"
    )
    schemas = json.loads(render("push"))["schemas"]
    client = schemas["ClientMessage"]["discriminator"]["mapping"]
    server = schemas["ServerMessage"]["discriminator"]["mapping"]
    assert set(client) == {"subscribe", "unsubscribe", "submit"}
    assert set(server) == {"accepted", "task", "subscribed", "unsubscribed", "error"}
