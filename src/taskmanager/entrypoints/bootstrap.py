"""The one place that chooses adapters.

Settings come from environment variables whose names match the Terraform ones; the AWS
dependencies (botocore clients, the DynamoDB repository, the EventBridge publisher) are built on
first use and cached for the life of the process, so warm Lambda invocations reuse them.
Nothing here reads the environment or builds a client at import time.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, Json

from taskmanager.domain.model import (
    DEFAULT_RETENTION_SECONDS,
    DEFAULT_TIMEOUT_SECONDS,
    MAX_TIMEOUT_SECONDS,
    MIN_TIMEOUT_SECONDS,
    TaskType,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from botocore.config import Config

    from taskmanager.adapters.apigateway import ConnectionPusher
    from taskmanager.adapters.dynamodb.connections import DynamoDBConnections
    from taskmanager.adapters.jwks import JwtVerifier
    from taskmanager.domain.ports import Clock, EventPublisher, IdFactory, TaskRepository
    from taskmanager.domain.services import Policy

OwnerClaim = Literal["iam", "iam_session", "jwt_sub"]
#: An EventBridge event source (PutEvents takes 1-256 characters).
EventSource = Annotated[str, Field(min_length=1, max_length=256)]


ENV_PREFIX: Final = "TASKMANAGER_"

#: Attempts botocore makes of one AWS request, the first included. botocore is the only
#: retry layer (the adapters send each request once; docs/storage.md, "Failures"), so this
#: bounds every request. Standard mode backs off with full jitter, from 1 s for throttling
#: and from 25-50 ms for server and connection faults, doubling: four attempts wait at most
#: 1 + 2 + 4 = 7 s, so a throttled request still gets its 503 out within the API function's
#: default 10 s timeout.
AWS_MAX_ATTEMPTS: Final = 4
#: The most task types ``TASKMANAGER_TASK_TYPES`` names (Lambda keeps all of a function's
#: environment variables within 4 KB).
MAX_TASK_TYPES: Final = 50


class Settings(BaseModel):
    """Deployment settings: ``TASKMANAGER_<FIELD>`` environment variables (the Terraform
    names), validated by pydantic.

    Read by :meth:`from_environ` rather than with pydantic-settings, whose import of
    ``asyncio`` and ``dotenv`` would weigh on every cold start (docs/performance.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    table_name: str = Field(min_length=3, max_length=255)
    event_bus_name: str = "default"
    event_source: str = Field("taskmanager", min_length=1, max_length=256)
    default_timeout_seconds: int = Field(
        DEFAULT_TIMEOUT_SECONDS, ge=MIN_TIMEOUT_SECONDS, le=MAX_TIMEOUT_SECONDS
    )
    retention_seconds: int = Field(DEFAULT_RETENTION_SECONDS, ge=1)
    #: The start timeout of a task submitted without one: it fails with START_TIMEOUT if
    #: still CREATED this long after submission. Unset: no start timeout.
    default_start_timeout_seconds: int | None = Field(
        None, ge=MIN_TIMEOUT_SECONDS, le=MAX_TIMEOUT_SECONDS
    )
    #: The task types a submit may name, as a JSON list (the task-manager module's
    #: ``task_types``): any other is refused with 422 UNKNOWN_TASK_TYPE. Unset or empty:
    #: any type (docs/deploy.md).
    task_types: Json[Annotated[list[TaskType], Field(max_length=MAX_TASK_TYPES)]] | None = None
    owner_claim: OwnerClaim = "iam"
    #: How many overdue tasks one sweeper invocation fails at most.
    sweep_limit: int = Field(500, ge=1, le=10_000)
    #: Partitions of the table's sweeper indexes (the DynamoDB adapter's
    #: ``DEFAULT_DUE_SHARDS`` and ``MAX_DUE_SHARDS``). Every function of a deployment must
    #: use the same count; it may be raised on a live table, never lowered (a task keeps the
    #: shard it was written with; docs/storage.md).
    due_shards: int = Field(4, ge=1, le=64)
    #: The event sources whose ``TaskUpdated`` may report on each task type, as JSON
    #: ``{"<task type>": ["<source>", ...]}`` (the task-manager module's ``processor_sources``).
    #: Unset or empty: any source may report on any task (docs/deploy.md).
    processor_sources: Json[dict[TaskType, list[EventSource]]] | None = None
    #: The push protocol on AWS (docs/push.md): the connections table, and the WebSocket
    #: API's management endpoint (``https://{id}.execute-api.{region}.amazonaws.com/{stage}``)
    #: the notify function posts to. Set by the module's ``websocket`` variable.
    connections_table_name: str | None = Field(None, min_length=3, max_length=255)
    websocket_endpoint: str | None = Field(None, min_length=1)
    #: The push WebSocket's JWT request authorizer (``entrypoints/authorizer.py``): the
    #: issuer, the audiences (JSON list) and the scopes a token needs one of (JSON list;
    #: empty: none), as the HTTP API's JWT authorizer is given them.
    jwt_issuer: str | None = Field(None, pattern=r"^https://")
    jwt_audience: Json[list[str]] | None = None
    jwt_scopes: Json[list[str]] | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings named in ``environ`` (default ``os.environ``); the rest default."""
        env = os.environ if environ is None else environ
        values = {
            name: env[ENV_PREFIX + name.upper()]
            for name in cls.model_fields
            if ENV_PREFIX + name.upper() in env
        }
        return cls.model_validate(values)

    @property
    def types_by_source(self) -> dict[str, frozenset[str]] | None:
        """``processor_sources`` turned around: the task types each source may report on
        (None: any source may report on any task type)."""
        if not self.processor_sources:
            return None
        types: dict[str, set[str]] = {}
        for task_type, sources in self.processor_sources.items():
            for source in sources:
                types.setdefault(source, set()).add(task_type)
        return {source: frozenset(allowed) for source, allowed in types.items()}

    @property
    def policy(self) -> Policy:
        return _policy(
            default_timeout_seconds=self.default_timeout_seconds,
            retention_seconds=self.retention_seconds,
            default_start_timeout_seconds=self.default_start_timeout_seconds,
            task_types=frozenset(self.task_types) if self.task_types else None,
        )


def _policy(**settings: Any) -> Policy:
    # The use cases' module is imported when a policy is first needed: the stream handler,
    # which only publishes, never needs it and so never imports it.
    from taskmanager.domain.services import Policy  # noqa: PLC0415

    return Policy(**settings)


@dataclass(frozen=True, slots=True)
class Dependencies:
    """What the use cases of one deployment need. The API and the handlers take it from a
    provider (a zero-argument callable), so tests and the local server pass their own."""

    repo: TaskRepository
    clock: Clock
    ids: IdFactory
    policy: Policy = field(default_factory=_policy)
    publisher: EventPublisher | None = None
    event_source: str = "taskmanager"
    #: The task types each event source may report on; None: any source, any type (one
    #: process, or a deployment without ``processor_sources``).
    types_by_source: Mapping[str, frozenset[str]] | None = None

    def types_for(self, source: str) -> frozenset[str] | None:
        """The task types ``source`` may send ``TaskUpdated`` for: None for any, empty for
        none (a source no processor publishes with)."""
        if self.types_by_source is None:
            return None
        return self.types_by_source.get(source, frozenset())


@functools.cache
def settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings.from_environ()


@functools.cache
def _session() -> Any:
    # botocore directly, since boto3's import (s3transfer, multiprocessing) would weigh on
    # every cold start for nothing used here; see adapters.aws_session and docs/performance.md.
    from taskmanager.adapters.aws_session import new_session  # noqa: PLC0415 (first use)

    return new_session()


def client_config() -> Config:
    """The configuration of every AWS client: botocore's standard retry mode, at most
    :data:`AWS_MAX_ATTEMPTS` attempts per request; TCP keep-alive."""
    from botocore.config import Config  # noqa: PLC0415

    return Config(
        retries={"mode": "standard", "total_max_attempts": AWS_MAX_ATTEMPTS}, tcp_keepalive=True
    )


@functools.cache
def client(service: str) -> Any:
    """One botocore client per service for the life of the process (the same client class
    boto3 would build), configured by :func:`client_config`.

    ``AWS_ENDPOINT_URL`` (an SDK-wide setting) points every client at another endpoint,
    which is how the end-to-end tests reach moto server."""
    return _session().create_client(service, config=client_config())


@functools.cache
def repository() -> TaskRepository:
    """The DynamoDB repository on ``TASKMANAGER_TABLE_NAME``, its sweeper indexes spread
    over ``TASKMANAGER_DUE_SHARDS`` shards."""
    from taskmanager.adapters.dynamodb import DynamoDBTaskRepository  # noqa: PLC0415

    config = settings()
    return DynamoDBTaskRepository(
        client("dynamodb"), config.table_name, due_shards=config.due_shards
    )


@functools.cache
def publisher() -> EventPublisher:
    """The EventBridge publisher on ``TASKMANAGER_EVENT_BUS_NAME``."""
    from taskmanager.adapters.eventbridge import EventBridgePublisher  # noqa: PLC0415

    config = settings()
    return EventBridgePublisher(client("events"), config.event_bus_name, config.event_source)


@functools.cache
def connections() -> DynamoDBConnections:
    """The connections table of the push protocol (``TASKMANAGER_CONNECTIONS_TABLE_NAME``)."""
    from taskmanager.adapters.dynamodb.connections import DynamoDBConnections  # noqa: PLC0415
    from taskmanager.adapters.memory import SystemClock  # noqa: PLC0415

    name = settings().connections_table_name
    if name is None:
        raise RuntimeError("TASKMANAGER_CONNECTIONS_TABLE_NAME is not set")
    return DynamoDBConnections(client("dynamodb"), name, SystemClock())


@functools.cache
def pusher() -> ConnectionPusher:
    """Sends to the WebSocket API's connections (``TASKMANAGER_WEBSOCKET_ENDPOINT``). Its
    client does not retry: the pusher's own bounded attempts are the retry."""
    from botocore.config import Config  # noqa: PLC0415

    from taskmanager.adapters.apigateway import ConnectionPusher  # noqa: PLC0415

    endpoint = settings().websocket_endpoint
    if endpoint is None:
        raise RuntimeError("TASKMANAGER_WEBSOCKET_ENDPOINT is not set")
    config = Config(retries={"mode": "standard", "total_max_attempts": 1}, tcp_keepalive=True)
    management = _session().create_client(
        "apigatewaymanagementapi", endpoint_url=endpoint, config=config
    )
    return ConnectionPusher(management)


@functools.cache
def jwt_verifier() -> JwtVerifier:
    """Verifies the push WebSocket's tokens (``TASKMANAGER_JWT_*``)."""
    from taskmanager.adapters.jwks import JwtVerifier  # noqa: PLC0415

    config = settings()
    if config.jwt_issuer is None or not config.jwt_audience:
        raise RuntimeError("TASKMANAGER_JWT_ISSUER and TASKMANAGER_JWT_AUDIENCE must be set")
    return JwtVerifier(
        config.jwt_issuer, frozenset(config.jwt_audience), frozenset(config.jwt_scopes or ())
    )


@functools.cache
def aws_dependencies() -> Dependencies:
    """What the API, updates and sweeper handlers use in AWS. The publisher is left out:
    only the stream handler publishes (it takes :func:`publisher`)."""
    from taskmanager.adapters.memory import SystemClock, UuidIdFactory  # noqa: PLC0415

    config = settings()
    return Dependencies(
        repo=repository(),
        clock=SystemClock(),
        ids=UuidIdFactory(),
        policy=config.policy,
        event_source=config.event_source,
        types_by_source=config.types_by_source,
    )


def reset() -> None:
    """Forget the cached settings, clients and dependencies (tests change the environment)."""
    for cached in (
        settings,
        _session,
        client,
        repository,
        publisher,
        connections,
        pusher,
        jwt_verifier,
        aws_dependencies,
    ):
        cached.cache_clear()
