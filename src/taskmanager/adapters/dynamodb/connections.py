"""WebSocket connections and their subscriptions (docs/push.md, "On AWS"), in a DynamoDB
table of their own.

Why not the task table: its key is ``task_id`` alone, and the notifier asks "which
connections follow this task, or every task of this owner", a one-to-many query that needs
a range key; and every write to the task table goes through its stream to the stream
function, which would then be woken by each connect and subscribe, only to skip them. This
table has no stream and no index.

=====================  =====================  =============================================
``pk``                 ``sk``                 item
=====================  =====================  =============================================
``CONN#<connection>``  ``#``                  the connection: ``owner``
``CONN#<connection>``  ``SUB#<target>``       a subscription, as its connection lists it
``SUB#<target>``       ``<connection>``       the same, as the notifier finds it: ``owner``
=====================  =====================  =============================================

``<target>`` is ``TASK#<task id>`` or ``OWNER#<owner>`` (every task of the owner). Each item
carries ``expires_at`` (the table's TTL attribute, epoch seconds): API Gateway closes a
connection after two hours at most, so nothing outlives that by much even when
``$disconnect`` never came; ``$disconnect`` and a gone connection delete them at once.

Requests are sent once; botocore's retry configuration is the retry (as for the tasks).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from taskmanager.domain.errors import StorageError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from mypy_boto3_dynamodb.client import DynamoDBClient

    from taskmanager.domain.ports import Clock

#: API Gateway's longest connection: two hours.
CONNECTION_TTL: Final = timedelta(hours=2)
TTL_ATTRIBUTE: Final = "expires_at"
_CONNECTION_SK: Final = "#"
_BATCH: Final = 25  # BatchWriteItem's limit


def _target(task_id: str | None, owner: str) -> str:
    return f"OWNER#{owner}" if task_id is None else f"TASK#{task_id}"


class DynamoDBConnections:
    """The connections table: the ``Subscribers`` port for the notifier, and, per
    connection, the ``Subscriptions`` port for the protocol (:meth:`subscriptions`)."""

    def __init__(
        self, client: DynamoDBClient, table_name: str, clock: Clock, ttl: timedelta = CONNECTION_TTL
    ) -> None:
        self._client = client
        self.table_name = table_name
        self._clock = clock
        self._ttl = ttl

    def _call(self, operation: Callable[..., Any], **kwargs: Any) -> Any:
        name = getattr(operation, "__name__", "request")
        try:
            return operation(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            code = (
                exc.response.get("Error", {}).get("Code", "")
                if isinstance(exc, ClientError)
                else ""
            )
            raise StorageError(
                f"DynamoDB {name} on {self.table_name} failed: {code or exc}",
                details={"operation": name, "code": code},
            ) from exc

    def _expires(self) -> dict[str, str]:
        at = self._clock.now().astimezone(UTC) + self._ttl
        return {"N": str(math.ceil(at.timestamp()))}

    # -- connections ---------------------------------------------------------------------------
    def open(self, connection_id: str, owner: str) -> None:
        """Record a new connection of ``owner`` ($connect)."""
        item = {
            "pk": {"S": f"CONN#{connection_id}"},
            "sk": {"S": _CONNECTION_SK},
            "owner": {"S": owner},
            TTL_ATTRIBUTE: self._expires(),
        }
        self._call(self._client.put_item, TableName=self.table_name, Item=item)

    def owner_of(self, connection_id: str) -> str | None:
        """The owner the connection was opened by; ``None`` for an unknown (or expired)
        connection."""
        answer = self._call(
            self._client.get_item,
            TableName=self.table_name,
            Key={"pk": {"S": f"CONN#{connection_id}"}, "sk": {"S": _CONNECTION_SK}},
            ConsistentRead=True,
        )
        item = answer.get("Item")
        if item is None or _expired(item, self._clock.now()):
            return None
        return str(item["owner"]["S"])

    def subscriptions(self, connection_id: str, owner: str) -> ConnectionSubscriptions:
        return ConnectionSubscriptions(self, connection_id, owner)

    def forget(self, connection_id: str) -> None:
        """Delete the connection and every subscription of it ($disconnect, gone)."""
        keys = []
        for sk in self._connection_keys(connection_id):
            keys.append({"pk": {"S": f"CONN#{connection_id}"}, "sk": {"S": sk}})
            if sk.startswith("SUB#"):  # the same subscription, as the notifier finds it
                keys.append({"pk": {"S": sk}, "sk": {"S": connection_id}})
        self._delete(keys)

    # -- subscriptions ---------------------------------------------------------------------------
    def add(self, connection_id: str, owner: str, target: str) -> None:
        expires = self._expires()
        self._write(
            [
                {
                    "PutRequest": {
                        "Item": {
                            "pk": {"S": f"SUB#{target}"},
                            "sk": {"S": connection_id},
                            "owner": {"S": owner},
                            TTL_ATTRIBUTE: expires,
                        }
                    }
                },
                {
                    "PutRequest": {
                        "Item": {
                            "pk": {"S": f"CONN#{connection_id}"},
                            "sk": {"S": f"SUB#{target}"},
                            TTL_ATTRIBUTE: expires,
                        }
                    }
                },
            ]
        )

    def remove(self, connection_id: str, target: str | None) -> None:
        """Delete one subscription (``target``), or every one of the connection (``None``)."""
        if target is None:
            targets = [
                sk.removeprefix("SUB#")
                for sk in self._connection_keys(connection_id)
                if sk.startswith("SUB#")
            ]
        else:
            targets = [target]
        keys = []
        for each in targets:
            keys.append({"pk": {"S": f"SUB#{each}"}, "sk": {"S": connection_id}})
            keys.append({"pk": {"S": f"CONN#{connection_id}"}, "sk": {"S": f"SUB#{each}"}})
        self._delete(keys)

    def following(self, task_id: str, owner: str) -> list[str]:
        """Connections of ``owner`` following ``task_id`` or every task of ``owner``."""
        found: dict[str, None] = {}
        now = self._clock.now()
        for target in (_target(task_id, owner), _target(None, owner)):
            for item in self._query(f"SUB#{target}"):
                if item.get("owner", {}).get("S") == owner and not _expired(item, now):
                    found[item["sk"]["S"]] = None
        return list(found)

    # -- requests --------------------------------------------------------------------------------
    def _query(self, pk: str) -> Iterator[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ConsistentRead": True,
        }
        while True:
            answer = self._call(self._client.query, **request)
            yield from answer.get("Items", [])
            last = answer.get("LastEvaluatedKey")
            if not last:
                return
            request["ExclusiveStartKey"] = last

    def _connection_keys(self, connection_id: str) -> list[str]:
        return [item["sk"]["S"] for item in self._query(f"CONN#{connection_id}")]

    def _delete(self, keys: list[dict[str, Any]]) -> None:
        self._write([{"DeleteRequest": {"Key": key}} for key in keys])

    def _write(self, requests: list[dict[str, Any]]) -> None:
        for start in range(0, len(requests), _BATCH):
            pending: dict[str, Any] = {self.table_name: requests[start : start + _BATCH]}
            for _ in range(5):  # what DynamoDB left unprocessed (throttled), again
                answer = self._call(self._client.batch_write_item, RequestItems=pending)
                pending = answer.get("UnprocessedItems") or {}
                if not pending:
                    break
            else:
                raise StorageError(f"DynamoDB left writes on {self.table_name} unprocessed")


class ConnectionSubscriptions:
    """One connection's subscriptions: the protocol's ``Subscriptions`` port."""

    def __init__(self, table: DynamoDBConnections, connection_id: str, owner: str) -> None:
        self._table = table
        self.connection_id = connection_id
        self.owner = owner

    def subscribe(self, task_id: str | None) -> None:
        self._table.add(self.connection_id, self.owner, _target(task_id, self.owner))

    def unsubscribe(self, task_id: str | None) -> None:
        target = None if task_id is None else _target(task_id, self.owner)
        self._table.remove(self.connection_id, target)


def _expired(item: dict[str, Any], now: datetime) -> bool:
    """DynamoDB deletes an expired item within days, not at once: it reads as absent."""
    expires = item.get(TTL_ATTRIBUTE, {}).get("N")
    return expires is not None and int(expires) <= now.timestamp()


def create_connections_table(client: DynamoDBClient, table_name: str) -> None:
    """Create the connections table as Terraform does (keys, TTL, on-demand billing)."""
    client.create_table(
        TableName=table_name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
    )
    client.get_waiter("table_exists").wait(
        TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    client.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )
