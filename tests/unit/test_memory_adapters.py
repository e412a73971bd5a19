"""The in-memory clock and id factory."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from taskmanager.adapters.memory import ManualClock, SystemClock, UuidIdFactory


def test_ids_are_version_7_uuids_in_canonical_form() -> None:
    ids = UuidIdFactory()
    made = [ids.new_id() for _ in range(1000)]  # several refills of the buffer
    assert len(set(made)) == len(made)
    for text in made:
        parsed = uuid.UUID(text)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text
    # The variant digit keeps its two random bits: all four values occur in 1000 ids.
    assert {text[19] for text in made} == set("89ab")
    # So do the 12 random bits after the version: far more than a handful of values.
    assert len({text[15:18] for text in made}) > 500


def test_ids_carry_their_creation_millisecond_and_sort_by_it() -> None:
    ids = UuidIdFactory()
    made: list[tuple[int, str, int]] = []
    for _ in range(5):
        before = time.time_ns() // 1_000_000
        text = ids.new_id()
        made.append((before, text, time.time_ns() // 1_000_000))
        time.sleep(0.002)
    for before, text, after in made:
        assert before <= uuid.UUID(text).int >> 80 <= after
    texts = [text for _, text, _ in made]
    assert sorted(texts) == texts  # a later millisecond sorts later, as text too


def test_ids_are_unique_across_threads() -> None:
    ids = UuidIdFactory()
    made: list[list[str]] = [[] for _ in range(8)]

    def take(bucket: list[str]) -> None:
        for _ in range(500):
            bucket.append(ids.new_id())

    threads = [threading.Thread(target=take, args=(bucket,)) for bucket in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    everything = [i for bucket in made for i in bucket]
    assert len(everything) == 8 * 500
    assert len(set(everything)) == len(everything)


def test_system_clock_reads_aware_utc_time() -> None:
    before = datetime.now(UTC)
    now = SystemClock().now()
    assert now.tzinfo is UTC
    assert before <= now <= datetime.now(UTC)


def test_manual_clock_moves_only_when_told() -> None:
    start = datetime(2030, 5, 1, tzinfo=UTC)
    clock = ManualClock(start)
    assert clock.now() == start
    assert clock.advance(1.5) == start + timedelta(seconds=1.5)
    assert clock.now() == start + timedelta(seconds=1.5)
