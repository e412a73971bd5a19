"""The Conductor ``HTTP_POLL`` example of docs/api.md: its ``terminationCondition``,
evaluated by a JavaScript engine (node) against real ``GET /tasks/{id}`` answers, stops
polling exactly at a terminal status; its interval honours ``Retry-After``."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from taskmanager.adapters.memory import InMemoryTaskRepository, SystemClock, UuidIdFactory
from taskmanager.domain.events import TaskUpdated
from taskmanager.entrypoints.api import create_app
from taskmanager.entrypoints.bootstrap import Dependencies
from taskmanager.processor import DirectTransport
from tests.conftest import require_tool
from tests.support import base_url, serve

if TYPE_CHECKING:
    from collections.abc import Iterator

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def _poll_task() -> dict[str, Any]:
    text = API_DOC.read_text(encoding="utf-8")
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, re.DOTALL)]
    (task,) = [b for b in blocks if isinstance(b, dict) and b.get("type") == "HTTP_POLL"]
    return task


def _answer(url: str) -> dict[str, Any]:
    """The HTTP task's output as Conductor shapes it: ``response`` with body, statusCode and
    headers."""
    with urllib.request.urlopen(url, timeout=10) as reply:
        headers = {k: [v] for k, v in reply.headers.items()}
        return {
            "response": {
                "body": json.loads(reply.read()),
                "statusCode": reply.status,
                "headers": headers,
            }
        }


def _terminates(condition: str, output: dict[str, Any], node: str) -> bool:
    """The condition as Conductor evaluates it: a JavaScript script whose value is its last
    expression's, with ``$`` the task (``$.output`` its output)."""
    bound = json.dumps({"output": output})
    script = f"var $ = {bound};\nprocess.stdout.write(String(eval({json.dumps(condition)})));"
    done = subprocess.run(
        [node, "-e", script], capture_output=True, text=True, timeout=30, check=True
    )
    assert done.stdout in {"true", "false"}, done.stdout
    return done.stdout == "true"


@pytest.fixture
def api() -> Iterator[tuple[str, DirectTransport]]:
    repo = InMemoryTaskRepository()
    deps = Dependencies(repo=repo, clock=SystemClock(), ids=UuidIdFactory())
    with serve(create_app(lambda: deps)) as server:
        yield base_url(server), DirectTransport(repo, SystemClock())


def test_the_condition_stops_at_a_terminal_status_only(api: tuple[str, DirectTransport]) -> None:
    node = require_tool("node")
    url, processor = api
    request = _poll_task()["inputParameters"]["http_request"]
    condition = request["terminationCondition"]

    def submit() -> str:
        body = json.dumps({"type": "report.render"}).encode()
        post = urllib.request.Request(
            f"{url}/tasks", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(post, timeout=10) as reply:
            return str(json.loads(reply.read())["id"])

    done, failed = submit(), submit()
    seen: list[tuple[str, bool]] = []

    def poll(task_id: str) -> None:
        output = _answer(f"{url}/tasks/{task_id}")
        seen.append((output["response"]["body"]["status"], _terminates(condition, output, node)))
        if not seen[-1][1]:  # an open task: the interval is at least what the API asks
            retry_after = float(output["response"]["headers"]["Retry-After"][0])
            assert float(request["pollingInterval"]) >= retry_after

    poll(done)
    processor.send(TaskUpdated.model_validate({"task_id": done, "status": "RUNNING"}))
    progress = {"percent": 50, "message": "half"}
    processor.send(
        TaskUpdated.model_validate({"task_id": done, "status": "RUNNING", "progress": progress})
    )
    poll(done)
    processor.send(
        TaskUpdated.model_validate({"task_id": done, "status": "SUCCESSFUL", "result": 1})
    )
    poll(done)
    error = {"code": "BAD_INPUT", "message": "no"}
    processor.send(
        TaskUpdated.model_validate({"task_id": failed, "status": "FAILED", "error": error})
    )
    poll(failed)
    assert seen == [
        ("CREATED", False),
        ("RUNNING", False),
        ("SUCCESSFUL", True),
        ("FAILED", True),
    ]


def test_the_example_polls_the_task_it_submitted() -> None:
    task = _poll_task()
    request = task["inputParameters"]["http_request"]
    assert request["method"] == "GET"
    assert request["uri"].endswith("/tasks/${submit_report.output.response.body.id}")
    assert request["pollingStrategy"] in {"FIXED", "LINEAR_BACKOFF", "EXPONENTIAL_BACKOFF"}
