"""The commands of docs/processors.md, "On a queue, in a container", run as documented:
`taskmanager worker` and the same worker started from Python, against moto server."""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.e2e.queue_world import ROOT, QueueWorld, queue_world

if TYPE_CHECKING:
    from collections.abc import Iterator

DOC = ROOT / "docs" / "processors.md"


def _section() -> str:
    text = DOC.read_text()
    start = text.index("## On a queue, in a container")
    return text[start : text.index("\n## ", start + 1)]


def _commands() -> list[str]:
    return re.findall(r"^\$ (PYTHONPATH=docs/examples .*)$", _section(), re.MULTILINE)


@pytest.fixture(scope="module")
def world(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueueWorld]:
    directory = tmp_path_factory.mktemp("docs-worker")
    with queue_world(moto_server, directory, task_types=["export.run"]) as world:
        yield world


def test_the_section_sets_what_a_worker_reads() -> None:
    exported = re.findall(r"^\$ export (.*)$", _section(), re.MULTILINE)
    names = {item.split("=")[0] for line in exported for item in line.split()}
    assert names == {
        "TASKMANAGER_TABLE_NAME",
        "TASKMANAGER_EVENT_BUS_NAME",
        "TASKMANAGER_PROCESSOR_SOURCE",
        "TASKMANAGER_QUEUE_URL",
    }
    assert len(_commands()) == 2


@pytest.mark.parametrize("command", _commands(), ids=["cli", "python"])
def test_a_documented_worker_runs_tasks_and_stops_on_sigterm(
    world: QueueWorld, command: str
) -> None:
    assignment, rest = command.split(" ", 1)
    env = {
        **world.worker_env(),
        "TASKMANAGER_QUEUE_URL": world.queue_url,
        # The command's PYTHONPATH, with the sources under test after it; `taskmanager` and
        # `python` of this test run.
        "PYTHONPATH": f"{assignment.split('=', 1)[1]}{os.pathsep}{ROOT / 'src'}",
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
        # moto: while a receive long-polls a queue, sends to that queue (EventBridge's
        # delivery of the TaskCreated) wait for the queue's lock, which the polling loop
        # takes again every second: with SQS's 20 s the task would arrive late. Short polls
        # leave gaps; the setting is one a container may use as well.
        "TASKMANAGER_WAIT_SECONDS": "1",
    }
    rest = re.sub(r"^python ", f"{sys.executable} ", rest)
    worker = world.start_process(f"exec {rest}", env, shell=True)

    task = world.submit("export.run", {"batches": 5})
    done = world.wait_until_done(task["id"])
    assert done["status"] == "SUCCESSFUL", worker.log()
    assert done["result"] == {"batches": 5, "attempt": 1, "resumed_after": 0}
    assert "concurrency 4" in worker.log()

    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0, worker.log()
    assert "worker stopped" in worker.log()
