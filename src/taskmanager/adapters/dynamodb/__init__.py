"""DynamoDB: the task store of the AWS deployment.

Every write is one conditional request, never a read followed by a write:

- submit is one ``PutItem`` with ``attribute_not_exists(task_id) OR expires_time <= now``
  (a live task with that id is kept; an expired one that DynamoDB has not deleted yet is
  replaced) and ``ReturnValuesOnConditionCheckFailure=ALL_OLD``: a refused submit carries
  the stored task, from which the use case tells an idempotent replay from a reused key. The
  item carries the request's random ``create_token``, so a retry of that same request that
  finds the item it wrote itself (the answer to the write was lost) reports it created;
- every guarded change is one ``UpdateItem`` whose ``ConditionExpression`` is the domain's
  :class:`~taskmanager.domain.model.Guard` (prior status in the allowed set, sequence bound,
  owner, version, task type), with ``ReturnValues=ALL_NEW`` and
  ``ReturnValuesOnConditionCheckFailure=ALL_OLD``: a refusal returns the stored task, which
  classifies it (duplicate, stale, rejected) without another call.

The outbox of this store is the table's stream (``NEW_AND_OLD_IMAGES``): the stream handler
turns each record into ``events_for_change(task_from_image(old), task_from_image(new))``.

Item layout (one item per task; Terraform creates the same table)
------------------------------------------------------------------

=========================  ====  ====================================================
attribute                  type  meaning
=========================  ====  ====================================================
``task_id``                S     table hash key (no range key)
``owner``                  S     hash key of GSI ``by-owner``
``created_key``            S     range key of ``by-owner``: ``created_at + "#" + id``
``type``, ``status``       S     the task's type and status
``input``                  S     JSON text (``null`` when no input)
``result``                 S     JSON text; absent when null
``progress``, ``error``    S     JSON objects as text; absent when null
``version``                N     +1 per applied change
``created_at``,            S     RFC 3339 UTC with microseconds, fixed width
``updated_at``,
``deadline_at``,
``started_at``,
``finished_at``
``expires_time``           S     exact ``expires_at`` (RFC 3339); set when terminal
``expires_at``             N     TTL attribute: ``expires_time`` in epoch seconds, rounded up
``heartbeat_seconds``      N     absent when the task has no heartbeat
``start_timeout_seconds``  N     absent when the task has no start timeout
``last_sequence``          N     the highest processor sequence applied
``idempotency_key``,       S     present when submitted with an Idempotency-Key
``request_fingerprint``
``open_shard``             S     hash key of sparse GSI ``by-deadline``; only while open
``deadline_epoch``         N     its range key: ``deadline_at`` in epoch seconds (6 decimals)
``hb_shard``               S     hash key of sparse GSI ``by-heartbeat``; while RUNNING, and
                                 while CREATED with a start timeout
``heartbeat_due_epoch``    N     its range key: ``updated_at + heartbeat_seconds`` (RUNNING),
                                 ``created_at + start_timeout_seconds`` (CREATED)
``create_token``           S     random token of the ``PutItem`` that wrote the item
=========================  ====  ====================================================

Indexes, each projecting only what its query reads (an index holds a copy of every projected
attribute, and DynamoDB rewrites that copy whenever one of them changes: with ALL, every
progress report would rewrite the whole item, up to 400 KB, into each index):

- ``by-owner`` (``owner``, ``created_key``), INCLUDE ``status``, ``type``, ``expires_time``:
  what a list's filter reads. :meth:`~DynamoDBTaskRepository.list_page` then reads the
  page's tasks from the table with one ``BatchGetItem``;
- ``by-deadline`` (``open_shard``, ``deadline_epoch``) and ``by-heartbeat`` (``hb_shard``,
  ``heartbeat_due_epoch``), KEYS_ONLY: the key attributes say which tasks are due and when;
  :meth:`~DynamoDBTaskRepository.due` reads the earliest of them from the table with
  ``BatchGetItem``.

The shard attributes spread the sweeper's indexes over ``due_shards`` partitions
(``crc32(id) % due_shards``, default :data:`DEFAULT_DUE_SHARDS`); :meth:`due` queries each.
A task keeps the shard it was written with, so the count may be raised on a live table but
never lowered: :meth:`due` queries shards ``0 .. due_shards - 1`` only.
TTL on ``expires_at``; stream ``NEW_AND_OLD_IMAGES``; billing ``PAY_PER_REQUEST``.

A RUNNING change cannot tell in one ``UpdateItem`` whether the stored task has a heartbeat
(DynamoDB has no conditional ``SET``), so every RUNNING task carries ``hb_shard``;
``heartbeat_due_epoch = updated + if_not_exists(heartbeat_seconds, 10**10)``, which puts a
task without a heartbeat centuries in the future, where the due query never reaches it.

Payloads are stored as JSON text, not DynamoDB maps: JSON numbers (floats, big integers)
round-trip exactly and the 400 KB item limit holds (input and result are 128 KiB each).

The adapter sends each request once: throttling, server faults and connection errors are
retried by the client, in botocore (``Config(retries=...)``; the deployment's is
:func:`taskmanager.entrypoints.bootstrap.client_config`), the one retry layer. A request that
still fails raises ``StorageError`` (``raise ... from`` the botocore error). No botocore
``ClientError`` leaves this package.

One module per concern:

- :mod:`.items`: the layout above (constants), task <-> item, the status reads of a processor;
- :mod:`.expressions`: the guard as a ``ConditionExpression``, a change as an ``UpdateItem``;
- :mod:`.table`: ``create_table`` and the sweeper's indexes;
- :mod:`.repository`: ``DynamoDBTaskRepository``, which sends the requests.
"""

from taskmanager.adapters.dynamodb.items import (
    BY_DEADLINE,
    BY_HEARTBEAT,
    BY_OWNER,
    CREATE_TOKEN,
    DEFAULT_DUE_SHARDS,
    MAX_DUE_SHARDS,
    NO_HEARTBEAT_SECONDS,
    OWNER_INDEX_ATTRIBUTES,
    TTL_ATTRIBUTE,
    created_key,
    state_from_item,
    state_request,
    status_from_item,
    status_request,
    task_from_image,
    task_to_item,
)
from taskmanager.adapters.dynamodb.repository import DynamoDBTaskRepository
from taskmanager.adapters.dynamodb.table import create_table

__all__ = [
    "BY_DEADLINE",
    "BY_HEARTBEAT",
    "BY_OWNER",
    "CREATE_TOKEN",
    "DEFAULT_DUE_SHARDS",
    "MAX_DUE_SHARDS",
    "NO_HEARTBEAT_SECONDS",
    "OWNER_INDEX_ATTRIBUTES",
    "TTL_ATTRIBUTE",
    "DynamoDBTaskRepository",
    "create_table",
    "created_key",
    "state_from_item",
    "state_request",
    "status_from_item",
    "status_request",
    "task_from_image",
    "task_to_item",
]
