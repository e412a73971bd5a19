"""Every `taskmanager` command shown in docs/local.md runs as documented."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests.e2e.local.harness import ROOT, LocalServer, cli_env

if TYPE_CHECKING:
    from collections.abc import Iterator

DOC = ROOT / "docs" / "local.md"


def documented_commands() -> list[tuple[list[str], int]]:
    """(argv after `taskmanager`, expected exit code) for each client command in the doc."""
    commands = []
    for line in DOC.read_text().splitlines():
        match = re.match(r"^\$ (?:PYTHONPATH=\S+ )?taskmanager (.*)$", line)
        if match is None:
            continue
        text, _, comment = match.group(1).partition("#")
        argv = shlex.split(text)
        if argv[0] == "serve":
            continue
        exit_code = re.search(r"exit (\d)", comment)
        commands.append((argv, int(exit_code.group(1)) if exit_code else 0))
    return commands


@pytest.fixture(scope="module")
def doc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A server with the doc's example processor, as `docs/local.md` starts it."""
    db = tmp_path_factory.mktemp("docs") / "taskmanager.db"
    server = LocalServer(db, ("--processor", "wordcount_processor:processor"))
    server.extra_path = str(ROOT / "docs" / "examples")
    yield server.start()
    server.stop()


def test_the_doc_shows_client_commands() -> None:
    assert len(documented_commands()) >= 8


@pytest.mark.parametrize(("argv", "expected"), documented_commands(), ids=str)
def test_documented_command_runs(doc_server: LocalServer, argv: list[str], expected: int) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "taskmanager.entrypoints.cli", "--url", doc_server.url, *argv],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == expected, result.stdout + result.stderr


def test_documented_processor_counts_words(doc_server: LocalServer) -> None:
    task = doc_server.submit("text.wordcount", {"text": "one two\nthree"})
    done = doc_server.wait_for(task["id"], {"SUCCESSFUL", "FAILED"})
    assert done["result"] == {"lines": 2, "words": 3}
