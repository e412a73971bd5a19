"""Handlers import nothing heavy and read nothing at import time (cold start, tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

MODULES = [
    "taskmanager.entrypoints.api",
    "taskmanager.entrypoints.stream",
    "taskmanager.entrypoints.updates",
    "taskmanager.entrypoints.sweeper",
    "taskmanager.entrypoints.sockets",
    "taskmanager.entrypoints.notify",
    "taskmanager.entrypoints.authorizer",
    "taskmanager.processor",
    "taskmanager.client",
    "taskmanager.worker",
    "taskmanager.retry",
    "taskmanager.transports",
]


def test_importing_the_handlers_builds_no_client_and_never_imports_xray() -> None:
    code = (
        "import json, os, sys\n"
        "os.environ.clear()\n"  # no settings: an import that read them would fail
        f"for name in {MODULES!r}: __import__(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'boto3', 'aws_xray_sdk', 'moto', 'sqlite3'} or m == 'botocore.session')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(out.stdout) == []


def test_only_the_authorizer_imports_the_jwt_library() -> None:
    """PyJWT and cryptography are in every function's zip, but only the JWT authorizer
    loads them: they would lengthen every other function's cold start."""
    others = [name for name in MODULES if name != "taskmanager.entrypoints.authorizer"]
    code = (
        "import json, sys\n"
        f"for name in {others!r}: __import__(name)\n"
        "loaded = lambda: sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'jwt', 'cryptography', 'cffi'})\n"
        "before = loaded()\n"
        "import taskmanager.entrypoints.authorizer\n"
        "print(json.dumps([before, 'jwt' in loaded(), 'cryptography' in loaded()]))\n"
    )
    before, authorizer_jwt, authorizer_cryptography = _run(code)
    assert before == []
    assert authorizer_jwt
    assert authorizer_cryptography


def _run(code: str, env: dict[str, str] | None = None) -> list[Any]:
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=env,
    )
    result: list[Any] = json.loads(out.stdout)
    return result


def test_a_handler_freezes_the_heap_on_its_first_invocation_not_at_import() -> None:
    code = (
        "import gc, json\n"
        f"for name in {MODULES!r}: __import__(name)\n"
        "from taskmanager.entrypoints import observability\n"
        "at_import = gc.get_freeze_count()\n"
        "handler = observability.instrument(lambda event, context: 'answered', lambda e: None)\n"
        "frozen = gc.get_freeze_count()\n"
        "print(json.dumps([at_import, frozen, handler({}, None)]))\n"
    )
    at_import, frozen, answer = _run(code)
    assert at_import == 0
    assert frozen > 10_000  # the imported modules, classes and functions
    assert answer == "answered"


def test_a_lambda_processor_freezes_the_heap_when_it_builds_its_aws_transport() -> None:
    code = (
        "import gc, json\n"
        "from taskmanager.processor import AwsTransport, Processor\n"
        "processor = Processor('report.render', lambda value: value)\n"
        "at_import = gc.get_freeze_count()\n"
        "transport = processor._aws_transport()\n"
        "print(json.dumps([at_import, gc.get_freeze_count(), type(transport).__name__]))\n"
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_DEFAULT_REGION": "us-east-1",
        "TASKMANAGER_TABLE_NAME": "tasks",
    }
    at_import, frozen, transport = _run(code, env)
    assert at_import == 0
    assert frozen > 10_000
    assert transport == "AwsTransport"
