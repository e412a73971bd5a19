"""``TaskUpdated``'s rules between its fields (docs/design.md §4): each refusal has its own
error."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from taskmanager.domain.events import TaskUpdated

ERROR = {"code": "E", "message": "m"}


@pytest.mark.parametrize(
    ("body", "error_type"),
    [
        ({"status": "CREATED"}, "invalid_status"),
        ({"status": "running"}, "invalid_status"),
        ({"status": None}, "invalid_status"),
        ({"status": "SUCCESSFUL", "progress": {"percent": 5}}, "progress_not_running"),
        ({"status": "FAILED", "error": ERROR, "progress": {"percent": 5}}, "progress_not_running"),
        ({"status": "RUNNING", "result": 1}, "result_not_successful"),
        ({"status": "FAILED", "error": ERROR, "result": [1]}, "result_not_successful"),
        ({"status": "FAILED"}, "error_with_failed"),
        ({"status": "FAILED", "error": None}, "error_with_failed"),
        ({"status": "RUNNING", "error": ERROR}, "error_with_failed"),
        ({"status": "SUCCESSFUL", "result": "a" * 140_000}, "payload_too_large"),
    ],
)
def test_an_update_breaking_a_rule_is_refused_with_that_rules_error(
    body: dict[str, Any], error_type: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        TaskUpdated.model_validate({"task_id": "t", **body})
    assert [e["type"] for e in raised.value.errors()] == [error_type]


@pytest.mark.parametrize(
    "body",
    [
        {"status": "RUNNING"},
        {"status": "RUNNING", "progress": {"percent": 5}, "result": None, "error": None},
        {"status": "SUCCESSFUL", "result": {"pages": 3}},
        {"status": "FAILED", "error": ERROR},
    ],
)
def test_an_update_keeping_the_rules_is_accepted(body: dict[str, Any]) -> None:
    assert TaskUpdated.model_validate({"task_id": "t", **body}).status == body["status"]
