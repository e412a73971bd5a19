"""How a processor reports and reads its task: the :class:`Transport` port and its two
implementations.

- :class:`AwsTransport`: ``TaskUpdated`` by EventBridge ``PutEvents``, the status (and,
  before a start, the progress) by a consistent DynamoDB ``GetItem``: a Lambda processor and
  ``taskmanager worker``;
- :class:`DirectTransport`: straight to the ``record_update`` use case on a repository
  (``taskmanager serve``, embedding, tests).

``taskmanager.processor`` re-exports all of them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from taskmanager.domain.events import TaskUpdated, event_detail_json
from taskmanager.domain.services import DEFAULT_POLICY, UpdateOutcome, record_update

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from taskmanager.domain.model import Progress, TaskStatus
    from taskmanager.domain.ports import Clock, TaskRepository
    from taskmanager.domain.services import Policy

logger = logging.getLogger("taskmanager.processor")


class Transport(Protocol):
    """How a processor reports and learns whether its task is still open."""

    def send(self, update: TaskUpdated) -> None:
        """Deliver one ``TaskUpdated`` (raise if it could not be delivered)."""
        ...

    def status(self, task_id: str) -> TaskStatus | None:
        """The task's current status, or None if there is no such task."""
        ...


@dataclass(frozen=True, slots=True)
class TaskState:
    """What a processor reads of its task before it starts: the status and, for a task an
    earlier attempt left RUNNING, the progress that attempt reported."""

    status: TaskStatus
    progress: Progress | None = None


def read_state(transport: Transport, task_id: str) -> TaskState | None:
    """The task's status and progress, through the transport's ``state`` method if it has
    one (both transports of this module do), else its status alone."""
    state: Callable[[str], TaskState | None] | None = getattr(transport, "state", None)
    if state is not None:
        return state(task_id)
    status = transport.status(task_id)
    return None if status is None else TaskState(status)


class AwsTransport:
    """Reports with EventBridge ``PutEvents``; reads status with a DynamoDB ``GetItem``.

    Needs ``events:PutEvents`` on the bus and ``dynamodb:GetItem`` on the table (the
    processor module of the Terraform code grants exactly these)."""

    def __init__(
        self,
        *,
        events_client: Any,
        dynamodb_client: Any,
        table_name: str,
        bus_name: str = "default",
        source: str = "taskmanager",
    ) -> None:
        self._events = events_client
        self._dynamodb = dynamodb_client
        self.table_name = table_name
        self.bus_name = bus_name
        self.source = source

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, *, client_config: Any = None
    ) -> AwsTransport:
        """From ``TASKMANAGER_TABLE_NAME``, ``TASKMANAGER_EVENT_BUS_NAME`` and
        ``TASKMANAGER_PROCESSOR_SOURCE`` (the names the Terraform processor module sets).

        The source is this processor's own, the only one its role may publish with; without
        ``TASKMANAGER_PROCESSOR_SOURCE`` it is ``TASKMANAGER_EVENT_SOURCE``, then
        ``taskmanager``, as before processors had sources of their own. ``client_config``:
        a botocore ``Config`` for both clients (a worker sizes their connection pools)."""
        # botocore without boto3 (whose import adds s3transfer and multiprocessing), one
        # session for both clients, models loaded without listing every service first: only
        # Lambda processors need it, on first use.
        from taskmanager.adapters.aws_session import new_session  # noqa: PLC0415

        env = os.environ if environ is None else environ
        table = env.get("TASKMANAGER_TABLE_NAME")
        if not table:
            raise RuntimeError("TASKMANAGER_TABLE_NAME is not set")
        session = new_session()
        return cls(
            events_client=session.create_client("events", config=client_config),
            dynamodb_client=session.create_client("dynamodb", config=client_config),
            table_name=table,
            bus_name=env.get("TASKMANAGER_EVENT_BUS_NAME") or "default",
            source=(
                env.get("TASKMANAGER_PROCESSOR_SOURCE")
                or env.get("TASKMANAGER_EVENT_SOURCE")
                or "taskmanager"
            ),
        )

    def send(self, update: TaskUpdated) -> None:
        entry = {
            "Source": self.source,
            "DetailType": TaskUpdated.DETAIL_TYPE,
            "Detail": event_detail_json(update),
            "EventBusName": self.bus_name,
            "Resources": [],
        }
        response = self._events.put_events(Entries=[entry])
        if response.get("FailedEntryCount"):
            failed = response["Entries"][0]
            raise RuntimeError(
                f"PutEvents refused TaskUpdated of task {update.task_id}: "
                f"{failed.get('ErrorCode')} {failed.get('ErrorMessage')}"
            )

    def status(self, task_id: str) -> TaskStatus | None:
        # The item layout is the DynamoDB adapter's (imported on first use: it needs
        # botocore); the request goes through this transport's client, whose errors reach
        # the caller unchanged.
        from taskmanager.adapters.dynamodb import status_from_item, status_request  # noqa: PLC0415

        response = self._dynamodb.get_item(**status_request(self.table_name, task_id))
        return status_from_item(response.get("Item"))

    def state(self, task_id: str) -> TaskState | None:
        """Status and progress in one consistent ``GetItem`` (the read before a start)."""
        from taskmanager.adapters.dynamodb import state_from_item, state_request  # noqa: PLC0415

        response = self._dynamodb.get_item(**state_request(self.table_name, task_id))
        found = state_from_item(response.get("Item"))
        return None if found is None else TaskState(status=found[0], progress=found[1])


class DirectTransport:
    """Reports straight to the ``record_update`` use case on a repository (embedding,
    tests, a single process). Refused updates are logged, as the updates Lambda does."""

    def __init__(self, repo: TaskRepository, clock: Clock, policy: Policy | None = None) -> None:
        self._repo = repo
        self._clock = clock
        self._policy = policy or DEFAULT_POLICY

    def send(self, update: TaskUpdated) -> None:
        result = record_update(update, repo=self._repo, clock=self._clock, policy=self._policy)
        if result.outcome is not UpdateOutcome.APPLIED:
            logger.info(
                "update of task %s: %s %s",
                update.task_id,
                result.outcome.value,
                result.reason or result.detail or "",
            )

    def status(self, task_id: str) -> TaskStatus | None:
        task = self._repo.get(task_id)
        return None if task is None else task.status

    def state(self, task_id: str) -> TaskState | None:
        task = self._repo.get(task_id)
        return None if task is None else TaskState(status=task.status, progress=task.progress)
