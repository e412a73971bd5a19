"""Handlers import nothing heavy and read nothing at import time (cold start, tests)."""

from __future__ import annotations

import json
import subprocess
import sys

MODULES = [
    "taskmanager.entrypoints.api",
    "taskmanager.entrypoints.stream",
    "taskmanager.entrypoints.updates",
    "taskmanager.entrypoints.sweeper",
    "taskmanager.processor",
    "taskmanager.client",
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
