"""The `taskmanager` command's arguments: every command, option and help text, and the
checks of option values (``taskmanager.entrypoints.cli`` runs what they ask for)."""

from __future__ import annotations

import argparse
import importlib.metadata
from typing import Final

DEFAULT_URL: Final = "http://127.0.0.1:8000"
#: The longest timeout a task may have (``domain.model.MAX_TIMEOUT_SECONDS``; the client
#: commands do not import the domain).
MAX_TIMEOUT_SECONDS: Final = 604_800
STATUSES: Final = ("CREATED", "RUNNING", "SUCCESSFUL", "FAILED")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _timeout(text: str) -> int:
    value = _positive(text)
    if value > MAX_TIMEOUT_SECONDS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_TIMEOUT_SECONDS}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be above 0")
    return value


def _version() -> str:
    try:
        return importlib.metadata.version("taskmanager")
    except importlib.metadata.PackageNotFoundError:  # sources on the path, not installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=argparse.SUPPRESS,
        help=f"the server (default: $TASKMANAGER_URL or {DEFAULT_URL})",
    )
    common.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print JSON (with --wait and watch: one line per change; errors too, on stderr)",
    )
    common.add_argument(
        "--ws-url",
        default=argparse.SUPPRESS,
        help="the push socket to follow tasks on (default: $TASKMANAGER_WS_URL; none: "
        "the local server's event stream)",
    )
    parser = argparse.ArgumentParser(
        prog="taskmanager",
        description="Long-running tasks: run the local server, submit and follow tasks.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"taskmanager {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the API, the web page and the processors")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a host name to serve besides localhost and --host (repeatable; * for any)",
    )
    serve.add_argument(
        "--db", default="taskmanager.db", help="SQLite file (default ./taskmanager.db)"
    )
    serve.add_argument(
        "--processor",
        action="append",
        default=[],
        metavar="MODULE:ATTR",
        help="a processor to run (repeatable); demo.sleep, demo.echo, demo.fail are built in",
    )
    serve.add_argument(
        "--accept-any-type",
        action="store_true",
        help="accept tasks of any type, not only the types of the processors loaded here "
        "(for processors that run elsewhere); by default another type is refused with "
        "422 UNKNOWN_TASK_TYPE",
    )
    serve.add_argument(
        "--default-start-timeout-seconds",
        type=_timeout,
        metavar="SECONDS",
        help="a task submitted without a start timeout fails with START_TIMEOUT if no "
        "processor picked it up this long after submission (default: no start timeout)",
    )
    serve.add_argument("--workers", type=_positive, default=4, help="processor threads (4)")
    serve.add_argument(
        "--grace-seconds",
        type=_seconds,
        default=10.0,
        help="on SIGINT/SIGTERM, how long running processors may finish (10)",
    )
    serve.add_argument(
        "--sweep-interval", type=_seconds, default=1.0, help="timeout sweeper period (1 s)"
    )

    worker = commands.add_parser(
        "worker", help="run processors on tasks from an SQS queue (any host, any duration)"
    )
    worker.add_argument(
        "--queue-url", help="the task type's queue (default $TASKMANAGER_QUEUE_URL)"
    )
    worker.add_argument(
        "--processor",
        action="append",
        default=[],
        metavar="MODULE:ATTR",
        help="a processor to run (repeatable; default $TASKMANAGER_PROCESSOR, comma-separated)",
    )
    worker.add_argument(
        "--concurrency",
        type=_positive,
        default=None,
        help="tasks run at once (default $TASKMANAGER_CONCURRENCY or 1)",
    )
    worker.add_argument(
        "--grace-seconds",
        type=_seconds,
        default=None,
        help="on SIGINT/SIGTERM, how long running tasks may finish before they are handed "
        "back to the queue (default $TASKMANAGER_GRACE_SECONDS or 30)",
    )
    worker.add_argument(
        "--wait-seconds",
        type=int,
        choices=range(21),
        default=None,
        metavar="0-20",
        help="long polling: how long a receive waits for a message "
        "(default $TASKMANAGER_WAIT_SECONDS or 20)",
    )
    worker.add_argument(
        "--visibility-timeout",
        type=_positive,
        default=None,
        metavar="S",
        help="how long a received message stays invisible before the worker extends it "
        "(default $TASKMANAGER_VISIBILITY_TIMEOUT or 60)",
    )

    submit = commands.add_parser("submit", help="submit a task", parents=[common])
    submit.add_argument("type", help="task type, e.g. demo.sleep")
    submit.add_argument("--input", help="JSON input, or @file to read it from a file")
    submit.add_argument("--idempotency-key", help="same key + same request = same task")
    submit.add_argument(
        "--timeout-seconds",
        type=_positive,
        help="the task fails with TIMEOUT if not finished this long after submission "
        "(default: the server's)",
    )
    submit.add_argument(
        "--heartbeat-seconds",
        type=_positive,
        help="the task fails with HEARTBEAT_TIMEOUT if its processor reports nothing "
        "for this long while RUNNING (default: no heartbeat)",
    )
    submit.add_argument(
        "--start-timeout-seconds",
        type=_positive,
        help="the task fails with START_TIMEOUT if no processor picked it up this long "
        "after submission (default: the server's; none unless it sets one)",
    )
    submit.add_argument(
        "--wait",
        action="store_true",
        help="follow it, then print its result or error; exit 0 if SUCCESSFUL",
    )

    get = commands.add_parser("get", help="show a task", parents=[common])
    get.add_argument("id", help="the task's id")

    listing = commands.add_parser("list", help="recent tasks, newest first", parents=[common])
    listing.add_argument(
        "--status",
        choices=STATUSES,
        help="only tasks in this status (a cancelled task is stored FAILED)",
    )
    listing.add_argument("--type", help="only tasks of this type")
    listing.add_argument("--limit", type=_positive, help="tasks per page (server default 20)")
    listing.add_argument("--cursor", help="the next page: the cursor the previous page printed")

    cancel = commands.add_parser("cancel", help="cancel an open task", parents=[common])
    cancel.add_argument("id", help="the task's id")

    watch_cmd = commands.add_parser("watch", help="follow a task until it ends", parents=[common])
    watch_cmd.add_argument("id", help="the task's id")
    return parser
