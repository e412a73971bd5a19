"""The one table of HTTP statuses: what docs/embedding.md promises for each error."""

from __future__ import annotations

import re
from pathlib import Path

from taskmanager.domain import errors
from taskmanager.domain.errors import InvalidCursorError, TaskManagerError
from taskmanager.entrypoints.http_errors import (
    STATUS_BY_ERROR,
    BodyTooLargeError,
    RouteNotFoundError,
    error_response,
    status_for,
)

ROOT = Path(__file__).resolve().parents[3]


def _documented() -> list[tuple[str, str, int]]:
    """(error class, code, status) of each row of the Errors table in docs/embedding.md
    that gives a status; ``A / B`` cells pair up."""
    text = (ROOT / "docs" / "embedding.md").read_text()
    table = text.split("## Errors", 1)[1].split("\n\n", 2)[1]
    rows: list[tuple[str, str, int]] = []
    for line in table.splitlines()[2:]:
        error, code, http = (cell.strip() for cell in line.strip("|").split("|"))
        names = re.findall(r"`([A-Z]\w*Error)`", error)
        codes = re.findall(r"`([A-Z_]+)`", code)
        statuses = [int(s) for s in re.findall(r"\b\d{3}\b", http)]
        if statuses:
            assert len(names) == len(codes) == len(statuses), line
            rows.extend(zip(names, codes, statuses, strict=True))
    return rows


def test_every_documented_error_has_its_documented_code_and_status() -> None:
    rows = _documented()
    assert len(rows) >= 10
    for name, code, status in rows:
        error_type = getattr(errors, name)
        assert (name, error_type.code, status_for(error_type)) == (name, code, status)


def test_a_subclass_answers_as_its_nearest_class_in_the_table() -> None:
    assert InvalidCursorError not in STATUS_BY_ERROR
    assert status_for(InvalidCursorError) == 400

    class NewError(TaskManagerError):
        code = "NEW"

    assert status_for(NewError) == 500


def test_an_error_response_is_the_documented_body_with_the_table_s_status() -> None:
    response = error_response(BodyTooLargeError(10, 11))
    assert response.status_code == 413
    assert response.body == (
        '{"error": {"code": "PAYLOAD_TOO_LARGE", "message": "request body is 11 bytes; '
        'the limit is 10 bytes", "details": {"field": "body", "size": 11, "limit": 10}}}'
    )
    assert error_response(RouteNotFoundError("GET", "/x")).status_code == 404
