"""The examples of docs/push.md run as documented against `taskmanager serve`: the SDK's
snippet in Python, and the browser example in headless Chromium on the server's own page."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from tests.conftest import require_tool
from tests.e2e.local.harness import ROOT, cli_env
from tests.e2e.local.test_browser import browser  # noqa: F401 (the fixture)

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

    from tests.e2e.local.harness import LocalServer

GUIDE = ROOT / "docs" / "push.md"


def _block(language: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", GUIDE.read_text(), re.DOTALL)
    assert len(blocks) == 1, f"one {language} example in docs/push.md"
    return str(blocks[0])


def test_the_sdk_example_prints_each_version_until_success(server: LocalServer) -> None:
    code = _block("python").replace("127.0.0.1:8000", f"127.0.0.1:{server.port}")
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1].startswith("SUCCESSFUL")
    assert any(line.startswith("RUNNING percent=100.0") for line in lines), lines


def test_the_browser_example_follows_a_task_it_submits(
    server: LocalServer,
    browser: WebDriver,  # noqa: F811 (the fixture imported above)
) -> None:
    require_tool("chromium")
    browser.get(server.url + "/")
    # The example logs with console.log; collect what it logs instead.
    script = (
        "window.logged = []; console.log = (...a) => window.logged.push(a.join(' '));\n"
        + _block("javascript")
    )
    browser.execute_script(script)
    deadline = time.monotonic() + 20
    logged: list[Any] = []
    while time.monotonic() < deadline:
        logged = browser.execute_script("return window.logged")
        if any(line.split(" ")[1:2] == ["SUCCESSFUL"] for line in logged):
            break
        time.sleep(0.1)
    statuses = [line.split(" ")[1] for line in logged]
    assert statuses[0] == "CREATED"
    assert "RUNNING" in statuses
    assert statuses[-1] == "SUCCESSFUL"
    assert len({line.split(" ")[0] for line in logged}) == 1  # the task it submitted
