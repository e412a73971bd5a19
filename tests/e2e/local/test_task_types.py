"""`taskmanager serve` knows the task types of its processors: a submit of another type is
refused (422 UNKNOWN_TASK_TYPE, the known types in the details), over HTTP and in the CLI,
unless the server is told to accept any type (``--accept-any-type``, the other tests' server).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from tests.e2e.local.test_cli import run

if TYPE_CHECKING:
    from tests.e2e.local.harness import LocalServer

DEMO_TYPES = ["demo.echo", "demo.fail", "demo.sleep"]
REFUSAL = (
    "no processor here takes tasks of this type; "
    "the known types are: demo.echo, demo.fail, demo.sleep"
)


def test_a_type_no_processor_takes_is_422_with_the_known_types(typed_server: LocalServer) -> None:
    response = typed_server.request("POST", "/tasks", {"type": "no.such.type", "input": 1})
    assert response.status == 422
    assert response.body == {
        "error": {
            "code": "UNKNOWN_TASK_TYPE",
            "message": REFUSAL,
            "details": {"field": "type", "known_types": DEMO_TYPES},
        }
    }
    listed = typed_server.request("GET", "/tasks?type=no.such.type")
    assert listed.body["items"] == []


def test_a_known_type_is_accepted_with_the_servers_default_start_timeout(
    typed_server: LocalServer,
) -> None:
    task = typed_server.submit("demo.echo", {"x": 1})
    assert task["start_timeout_seconds"] == 600
    assert typed_server.wait_for(task["id"], {"SUCCESSFUL"})["result"] == {"x": 1}


def test_the_cli_prints_the_refusal_with_the_known_types(typed_server: LocalServer) -> None:
    result = run(typed_server, "submit", "no.such.type")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f"taskmanager: 422 UNKNOWN_TASK_TYPE: {REFUSAL}\n"
    as_json = run(typed_server, "--json", "submit", "no.such.type")
    assert as_json.returncode == 1
    assert json.loads(as_json.stderr) == {
        "status": 422,
        "error": {
            "code": "UNKNOWN_TASK_TYPE",
            "message": REFUSAL,
            "details": {"field": "type", "known_types": DEMO_TYPES},
        },
    }
