"""The repository contract on DynamoDB: moto in-process, and a subset over real HTTP."""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
import pytest
from moto import mock_aws

from taskmanager.adapters.dynamodb import DynamoDBTaskRepository, create_table
from tests.contract.dynamodb_support import (
    make_moto_writes_atomic,
    stream_events,
    table_name,
)
from tests.contract.repository_contract import (
    CoreRepositoryContract,
    RepositoryContract,
    Store,
)

if TYPE_CHECKING:
    from collections.abc import Iterator


def _store(endpoint_url: str | None = None) -> Store:
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint_url)
    # botocore sends stream-ARN calls to the account endpoint
    # ({account}.streams-ddb.{region}.amazonaws.com), which moto does not intercept: name the
    # classic endpoint (docs/storage.md, "moto differences").
    streams = boto3.client(
        "dynamodbstreams",
        region_name="us-east-1",
        endpoint_url=endpoint_url or "https://streams.dynamodb.us-east-1.amazonaws.com",
    )
    table = table_name()
    create_table(client, table)
    repo = DynamoDBTaskRepository(client, table)
    return Store(
        repo,
        lambda: stream_events(client, streams, table),
        {"client": client, "table": table},
    )


class TestDynamoDBRepository(RepositoryContract):
    @pytest.fixture
    def store(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
        make_moto_writes_atomic(monkeypatch)
        with mock_aws():
            yield _store()


class TestDynamoDBRepositoryOverHTTP(CoreRepositoryContract):
    """moto server on loopback: real HTTP, real botocore serialisation and parsing."""

    @pytest.fixture
    def store(self, moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Store:
        make_moto_writes_atomic(monkeypatch)
        return _store(moto_server)
