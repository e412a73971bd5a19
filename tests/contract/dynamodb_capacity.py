"""Write units a change of one DynamoDB item consumes, estimated from its old and new images
the way AWS documents it, for the table and for each global secondary index.

- Item size: the UTF-8 bytes of every attribute name plus its value; a string is its UTF-8
  bytes, a number about one byte per two significant digits plus one.
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html
- A write to the table costs one unit per started KB of the larger of the item before and
  after it.
- An index entry is the table key, the index key and the projected attributes, plus the
  100 bytes AWS counts per entry in storage (counted here for writes too, which can only
  overstate). An index write costs one unit per started KB of its entry; a change that moves
  the entry's key costs a delete and a put; a change that leaves every projected attribute
  as it was writes nothing to the index.
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html#GSI.ThroughputConsiderations.Writes
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Mapping

Item = dict[str, Any]
KB = 1024
#: What DynamoDB adds to each index entry.
INDEX_ENTRY_OVERHEAD = 100


class Index(NamedTuple):
    """A global secondary index as far as its write cost goes."""

    name: str
    keys: tuple[str, ...]
    #: The non-key attributes it holds; ``None``: all of them (projection ALL).
    projected: tuple[str, ...] | None


def indexes_of(description: Mapping[str, Any]) -> list[Index]:
    """The GSIs of a ``DescribeTable`` answer."""
    found = []
    for gsi in description["GlobalSecondaryIndexes"]:
        projection = gsi["Projection"]
        projected = (
            None
            if projection["ProjectionType"] == "ALL"
            else tuple(projection.get("NonKeyAttributes", ()))
        )
        keys = tuple(k["AttributeName"] for k in gsi["KeySchema"])
        found.append(Index(gsi["IndexName"], keys, projected))
    return found


def projecting_all(indexes: list[Index]) -> list[Index]:
    """The same indexes, each projecting every attribute."""
    return [index._replace(projected=None) for index in indexes]


def _value_size(value: Mapping[str, Any]) -> int:
    if "S" in value:
        return len(value["S"].encode())
    if "N" in value:
        digits = value["N"].lstrip("-").replace(".", "").strip("0")
        return math.ceil(len(digits) / 2) + 1
    raise ValueError(f"no size rule here for {value}")


def item_size(item: Mapping[str, Any]) -> int:
    """The item's size in bytes as DynamoDB counts it."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def entry(item: Item | None, index: Index, table_key: str) -> Item | None:
    """The index's entry for ``item``; None when the item lacks a key of the (sparse) index."""
    if item is None or not all(key in item for key in index.keys):
        return None
    if index.projected is None:
        return dict(item)
    names = {table_key, *index.keys, *index.projected}
    return {name: value for name, value in item.items() if name in names}


def _units(size: int) -> int:
    return math.ceil(size / KB)


def index_write_units(old: Item | None, new: Item | None, index: Index, table_key: str) -> int:
    """What one change of an item costs ``index``."""
    before, after = entry(old, index, table_key), entry(new, index, table_key)
    if before == after:
        return 0
    if before is None or after is None:  # a put or a delete
        written = before if after is None else after
        assert written is not None
        return _units(item_size(written) + INDEX_ENTRY_OVERHEAD)
    delete = _units(item_size(before) + INDEX_ENTRY_OVERHEAD)
    put = _units(item_size(after) + INDEX_ENTRY_OVERHEAD)
    if any(before[key] != after[key] for key in index.keys):
        return delete + put  # the entry moved: a delete and a put
    return max(delete, put)  # updated in place


def write_units(
    old: Item | None, new: Item | None, indexes: list[Index], table_key: str = "task_id"
) -> dict[str, int]:
    """Write units of one change, by where they are consumed: ``"table"`` and each index."""
    sizes = [item_size(image) for image in (old, new) if image is not None]
    units = {"table": _units(max(sizes))}
    for index in indexes:
        units[index.name] = index_write_units(old, new, index, table_key)
    return units
