"""schemathesis against the API's own OpenAPI document (``GET /openapi.json``), over real HTTP.

Every operation is fuzzed with schema-valid requests (positive) and, where the document
constrains something, schema-violating ones (negative: wrong types, out-of-range numbers,
missing fields, unknown fields...). Each response must be no 5xx, a documented status, match
the documented schema, and, for every error, carry the one error body of docs/design.md §5. The
number of requests is counted and must reach ``MIN_REQUESTS`` in CI.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.core.result import Ok

from tests.integration.servers import FuzzTarget

if TYPE_CHECKING:
    from collections.abc import Iterator

#: Requests per (operation, generation mode); six runs make >= 1,000 requests in all.
EXAMPLES_PER_RUN: Final = 200
MIN_REQUESTS: Final = 1_000
ERROR_KEYS: Final = {"code", "message", "details"}


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    with FuzzTarget.start(tmp_path_factory.mktemp("fuzz")) as running:
        yield running


def check_error_body(status: int, content_type: str, text: str) -> None:
    """Every error is JSON ``{"error": {"code", "message", "details"}}`` and no stack trace."""
    assert "Traceback" not in text
    if status < 400:
        return
    assert content_type.startswith("application/json"), text
    body = json.loads(text)
    assert set(body) == {"error"}, body
    assert set(body["error"]) == ERROR_KEYS, body
    assert isinstance(body["error"]["code"], str)
    assert body["error"]["code"].isupper()
    assert isinstance(body["error"]["message"], str)


@pytest.mark.timeout(900)  # 1,200 requests; generous for a loaded CI machine
def test_every_operation_survives_generated_requests(target: FuzzTarget) -> None:
    schema = schemathesis.openapi.from_url(f"{target.url}/openapi.json")
    results = list(schema.get_all_operations())
    assert all(isinstance(r, Ok) for r in results), "the OpenAPI document does not load"
    operations = [r.ok() for r in results if isinstance(r, Ok)]
    assert {op.label for op in operations} == {
        "GET /tasks",
        "POST /tasks",
        "GET /tasks/{task_id}",
        "POST /tasks/{task_id}/cancel",
    }
    session = requests.Session()
    sent: dict[str, int] = {}
    statuses: dict[str, set[int]] = {}
    checks = schemathesis.checks
    # A random cursor or idempotency key is schema-valid but rightly refused (they are
    # opaque, or constrained in prose); positive acceptance is asserted by the hand-written
    # tests instead. Everything else schemathesis knows is checked.
    excluded = [checks.positive_data_acceptance]

    def fuzz(operation: Any, mode: Any) -> None:
        label = f"{operation.label} {mode.value}"

        @settings(
            max_examples=EXAMPLES_PER_RUN,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(mode))
        def run(case: Any) -> None:
            response = case.call(base_url=target.url, session=session, timeout=30)
            sent[label] = sent.get(label, 0) + 1
            statuses.setdefault(label, set()).add(response.status_code)
            assert response.status_code < 500, response.text
            content_type = (response.headers.get("content-type") or [""])[0]
            check_error_body(response.status_code, content_type, response.text)
            case.validate_response(response, excluded_checks=excluded)

        run()

    for operation in operations:
        fuzz(operation, schemathesis.GenerationMode.POSITIVE)
        try:
            fuzz(operation, schemathesis.GenerationMode.NEGATIVE)
        except Unsatisfiable:
            # A path parameter typed only "string" has nothing to violate.
            assert "{task_id}" in operation.label

    total = sum(sent.values())
    print(json.dumps({"requests": total, "by_run": sent}, indent=1))
    print({k: sorted(v) for k, v in statuses.items()})
    assert total >= MIN_REQUESTS
    target.assert_healthy()
