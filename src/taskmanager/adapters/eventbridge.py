"""EventBridge: the :class:`~taskmanager.domain.ports.EventPublisher` of the AWS deployment.

``publish`` sends outbound events with ``PutEvents`` in as few requests as the service
allows: at most 10 entries per request, and entries whose sizes add up to less than 256 KB,
sized the way EventBridge documents it ("Calculating PutEvents event entry size"): 14 bytes
for ``Time`` plus the UTF-8 bytes of ``Source``, ``DetailType``, ``Detail`` and each
``Resources`` entry.

Each kind of failure is retried by one layer only:

- a whole request refused for throttling or a server fault, or lost on the network, is
  retried by the client (botocore, as its ``Config(retries=...)`` says; the deployment's is
  :func:`taskmanager.entrypoints.bootstrap.client_config`). When it still fails, its entries
  are not sent again here: that would multiply the client's attempts.
- EventBridge accepts a request and still fails single entries (``FailedEntryCount``, an
  ``ErrorCode`` on the entry). botocore sees a success and retries nothing, so this module
  sends those entries again, with jittered exponential backoff, a bounded number of times.

Then ``PublishError`` names exactly the ``event_id`` of every event not delivered, so the
stream handler reports those records, and only those, as batch item failures.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from taskmanager.domain.errors import PublishError
from taskmanager.domain.events import event_detail_json

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from mypy_boto3_events.client import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

    from taskmanager.domain.events import OutboundEvent

#: Entries per PutEvents request.
MAX_ENTRIES: Final = 10
#: The entries of one request must add up to less than this many bytes.
MAX_REQUEST_BYTES: Final = 256 * 1024
#: What ``Time`` counts for in an entry's size.
TIME_BYTES: Final = 14
#: Entry error codes that no retry can fix.
PERMANENT_ENTRY_CODES: Final = frozenset(
    {"InvalidArgument", "MalformedDetail", "ValidationException", "AccessDeniedException"}
)

_Pair = tuple[str, "PutEventsRequestEntryTypeDef"]


def entry_size(entry: PutEventsRequestEntryTypeDef) -> int:
    """The size EventBridge counts for one entry, as its documentation computes it."""
    size = TIME_BYTES if entry.get("Time") is not None else 0
    size += len(entry["Source"].encode("utf-8"))
    size += len(entry["DetailType"].encode("utf-8"))
    detail = entry.get("Detail")
    if detail is not None:
        size += len(detail.encode("utf-8"))
    for resource in entry.get("Resources", []):
        size += len(resource.encode("utf-8"))
    return size


def batches(entries: Sequence[_Pair]) -> list[list[_Pair]]:
    """Split (event_id, entry) pairs, in order, into requests of at most 10 entries whose
    sizes add up to less than 256 KB. An entry too big for any request is left out (the
    caller reports it)."""
    out: list[list[_Pair]] = []
    current: list[_Pair] = []
    current_size = 0
    for pair in entries:
        size = entry_size(pair[1])
        if size >= MAX_REQUEST_BYTES:
            continue
        if current and (len(current) == MAX_ENTRIES or current_size + size >= MAX_REQUEST_BYTES):
            out.append(current)
            current, current_size = [], 0
        current.append(pair)
        current_size += size
    if current:
        out.append(current)
    return out


class EventBridgePublisher:
    """Publishes outbound events to one event bus with one ``source``.

    ``client`` is a boto3 EventBridge (``events``) client; its retry configuration retries
    whole requests. ``max_attempts`` bounds how often an entry is sent when EventBridge fails
    it alone; ``base_delay``/``max_delay`` shape the backoff between those rounds.
    """

    def __init__(
        self,
        client: EventBridgeClient,
        bus_name: str,
        source: str,
        *,
        max_attempts: int = 4,
        base_delay: float = 0.1,
        max_delay: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._client = client
        self.bus_name = bus_name
        self.source = source
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._sleep = sleep

    def entry(self, event: OutboundEvent) -> PutEventsRequestEntryTypeDef:
        """The PutEvents entry of ``event``: its detail-type, its detail as JSON, the time of
        the change it announces."""
        return {
            "Time": event.updated_at,
            "Source": self.source,
            "DetailType": event.DETAIL_TYPE,
            "Detail": event_detail_json(event),
            "EventBusName": self.bus_name,
        }

    def publish(self, events: Sequence[OutboundEvent]) -> None:
        """Deliver every event, or raise ``PublishError`` naming those not delivered."""
        undeliverable: dict[str, str] = {}
        pending: list[_Pair] = []
        for event in events:
            entry = self.entry(event)
            size = entry_size(entry)
            if size >= MAX_REQUEST_BYTES:
                undeliverable[event.event_id] = f"entry is {size} bytes; the limit is < 256 KB"
            else:
                pending.append((event.event_id, entry))
        reasons: dict[str, str] = {}
        attempt = 1
        while pending:
            retry: list[_Pair] = []
            for batch in batches(pending):
                for pair, reason, retryable in self._send(batch):
                    if retryable:
                        retry.append(pair)
                        reasons[pair[0]] = reason
                    else:
                        undeliverable[pair[0]] = reason
            pending = retry
            if not pending or attempt >= self._max_attempts:
                break
            cap = min(self._max_delay, self._base_delay * 2 ** (attempt - 1))
            self._sleep(random.uniform(0, cap))  # jitter, not cryptography
            attempt += 1
        for event_id, _ in pending:
            undeliverable[event_id] = f"{reasons[event_id]} (after {attempt} attempts)"
        if undeliverable:
            failed = [event.event_id for event in events if event.event_id in undeliverable]
            shown = "; ".join(f"{i}: {undeliverable[i]}" for i in failed[:5])
            raise PublishError(failed, f"bus {self.bus_name}: {shown}")

    def _send(self, batch: list[_Pair]) -> list[tuple[_Pair, str, bool]]:
        """Send one request; returns the entries that failed: (entry, reason, retryable).

        A request that fails as a whole has had the client's retries already: its entries
        are not retryable here."""
        try:
            response = self._client.put_events(Entries=[entry for _, entry in batch])
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            return [(pair, f"PutEvents refused: {code or exc}", False) for pair in batch]
        except BotoCoreError as exc:
            return [(pair, f"PutEvents failed: {exc}", False) for pair in batch]
        if not response.get("FailedEntryCount"):
            return []
        results: list[Any] = response.get("Entries", [])
        failed = []
        for pair, result in zip(batch, results, strict=False):
            code = result.get("ErrorCode")
            if code:
                reason = f"{code}: {result.get('ErrorMessage', '')}"
                failed.append((pair, reason, code not in PERMANENT_ENTRY_CODES))
        # EventBridge answers one result per entry, in order; a missing one counts as failed.
        failed += [(pair, "no result for entry", True) for pair in batch[len(results) :]]
        return failed
