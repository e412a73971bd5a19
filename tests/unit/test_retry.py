"""The processor SDK's retry policy on in-memory adapters: which failures are retried, how
long it waits, what it reports, and that a cancel ends the waiting."""

from __future__ import annotations

import random
from typing import Any

import pytest

from taskmanager.adapters.memory import InMemoryTaskRepository, ManualClock
from taskmanager.domain.model import Progress, TaskStatus
from taskmanager.domain.services import cancel_task
from taskmanager.processor import Processor, ProcessorContext, ProcessorError
from taskmanager.retry import RetryPolicy
from tests.unit.test_processor import Recorder, created, stored

FAST = RetryPolicy(attempts=3, backoff_seconds=0.01, retry_on=(TimeoutError,))


@pytest.fixture
def transport() -> Recorder:
    return Recorder(InMemoryTaskRepository(), ManualClock())


def test_backoff_is_full_jitter_under_an_exponential_ceiling() -> None:
    policy = RetryPolicy(attempts=10, backoff_seconds=1, multiplier=2, max_backoff_seconds=5)
    rng = random.Random(7)
    waits = [[policy.backoff(retry, rng) for _ in range(200)] for retry in (1, 2, 3, 4)]
    for ceiling, sample in zip((1, 2, 4, 5), waits, strict=True):
        assert min(sample) >= 0
        assert max(sample) <= ceiling
        assert max(sample) > ceiling * 0.8  # spread over the whole range, not a constant
    assert len({round(w, 6) for w in waits[0]}) > 100


@pytest.mark.parametrize(
    "bad",
    [{"attempts": 0}, {"backoff_seconds": -1}, {"max_backoff_seconds": -1}, {"multiplier": 0.5}],
)
def test_a_policy_out_of_range_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="RetryPolicy"):
        RetryPolicy(**bad)


def test_a_retryable_exception_type_is_retried_then_succeeds(transport: Recorder) -> None:
    seen: list[tuple[int, Progress | None]] = []

    def flaky(_input: Any, ctx: ProcessorContext) -> str:
        seen.append((ctx.retries, ctx.previous_progress))
        ctx.progress(40, "loaded")
        if ctx.retries == 0:
            raise TimeoutError("upstream slow")
        return "ok"

    event = created(transport)
    assert Processor("render", flaky, retry=FAST).handle(event, transport) == "successful"
    assert seen[0] == (0, None)
    assert seen[1][0] == 1
    assert seen[1][1] is not None
    assert seen[1][1].percent == 40
    retry_report = transport.sent[2].progress
    assert retry_report is not None
    assert retry_report.percent == 40
    assert retry_report.message is not None
    assert retry_report.message.startswith(
        "attempt 1 of 3 failed: PROCESSOR_ERROR: upstream slow; retrying in "
    )
    assert stored(transport, event.id).result == "ok"


def test_a_code_not_listed_fails_at_once(transport: Recorder) -> None:
    calls: list[int] = []
    policy = RetryPolicy(attempts=5, backoff_seconds=0, retry_codes=frozenset({"THROTTLED"}))

    def broken(_input: Any) -> None:
        calls.append(1)
        raise ProcessorError("BAD_INPUT", "no")

    event = created(transport)
    assert Processor("render", broken, retry=policy).handle(event, transport) == "failed"
    assert calls == [1]
    task = stored(transport, event.id)
    assert task.error is not None
    assert task.error.code == "BAD_INPUT"


def test_exhausted_attempts_fail_with_the_last_failure(transport: Recorder) -> None:
    policy = RetryPolicy(attempts=3, backoff_seconds=0, retry_codes=["THROTTLED"])

    def throttled(_input: Any, ctx: ProcessorContext) -> None:
        raise ProcessorError("THROTTLED", f"try {ctx.retries + 1}")

    event = created(transport)
    assert Processor("render", throttled, retry=policy).handle(event, transport) == "failed"
    task = stored(transport, event.id)
    assert task.status is TaskStatus.FAILED
    assert task.error is not None
    assert (task.error.code, task.error.message) == ("THROTTLED", "try 3")
    messages = [u.progress.message for u in transport.sent if u.progress is not None]
    assert [m.split(";")[0] for m in messages if m] == [
        "attempt 1 of 3 failed: THROTTLED: try 1",
        "attempt 2 of 3 failed: THROTTLED: try 2",
    ]


def test_a_cancel_during_the_backoff_ends_the_attempt(transport: Recorder) -> None:
    policy = RetryPolicy(attempts=3, backoff_seconds=30, retry_on=(TimeoutError,))
    calls: list[int] = []

    def slow_then_cancelled(_input: Any, ctx: ProcessorContext) -> None:
        calls.append(1)
        cancel_task(ctx.task_id, owner="o", repo=transport.repo, clock=transport._clock)
        ctx.refresh()
        raise TimeoutError("slow")

    event = created(transport)
    outcome = Processor("render", slow_then_cancelled, retry=policy).handle(event, transport)
    assert outcome == "cancelled"
    assert calls == [1]
    task = stored(transport, event.id)
    assert task.error is not None
    assert task.error.code == "CANCELLED"
