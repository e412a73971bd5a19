"""`taskmanager worker` and `Worker` refuse bad options before they touch a queue."""

from __future__ import annotations

from typing import Any

import pytest

from taskmanager.entrypoints import cli
from taskmanager.processor import Processor
from taskmanager.worker import Worker

PROCESSOR = Processor("t", lambda _input: None)


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"concurrency": 0}, "concurrency must be 1 to 256"),
        ({"concurrency": 257}, "concurrency must be 1 to 256"),
        ({"grace_seconds": -1}, "grace_seconds must not be negative"),
        ({"wait_seconds": 21}, "wait_seconds must be 0 to 20"),
        ({"visibility_timeout": 1}, "visibility_timeout must be 2 to 43200"),
        ({"visibility_timeout": 43_201}, "visibility_timeout must be 2 to 43200"),
    ],
)
def test_out_of_range_options_are_refused(options: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Worker([PROCESSOR], "https://queue", **options)


def test_a_worker_needs_a_processor() -> None:
    with pytest.raises(ValueError, match="at least one processor"):
        Worker([], "https://queue")


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["worker", "--processor", "json:loads"], "--queue-url (or $TASKMANAGER_QUEUE_URL)"),
        (["worker", "--queue-url", "https://q"], "--processor MODULE:ATTR"),
        (
            ["worker", "--queue-url", "https://q", "--processor", "no_such_module:p"],
            "cannot import no_such_module",
        ),
        (
            ["worker", "--queue-url", "https://q", "--processor", "json:loads"],
            "not a taskmanager.processor.Processor",
        ),
    ],
)
def test_the_command_says_what_is_missing_in_one_line(
    argv: list[str],
    problem: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TASKMANAGER_QUEUE_URL", raising=False)
    monkeypatch.delenv("TASKMANAGER_PROCESSOR", raising=False)
    assert cli.main(argv) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("taskmanager worker: error: ")
    assert problem in err
    assert len(err.strip().splitlines()) == 1
