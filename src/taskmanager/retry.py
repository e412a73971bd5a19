"""Retry policy of a processor: which failures of its function are worth another try, and
how long to wait before it.

    Processor("report.render", render, retry=RetryPolicy(attempts=4, retry_on=(TimeoutError,)))

A retry happens inside the same delivery of the task (the same Lambda invocation, the same
queue message): the processor reports it as progress (``attempt 1 of 4 failed: CODE:
message; retrying in 1.3 s``), waits, and calls the function again. The last failure, or
one that is not retryable, fails the task with its own code.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Collection

#: How long the first retry waits at most (seconds) unless the policy says otherwise.
DEFAULT_BACKOFF_SECONDS: Final = 1.0
#: No wait is longer than this, however many attempts.
DEFAULT_MAX_BACKOFF_SECONDS: Final = 60.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``attempts`` calls of the function at most (1: no retry). Before retry ``n`` (1, 2,
    ...) it waits a random time between 0 and ``min(max_backoff_seconds, backoff_seconds *
    multiplier ** (n - 1))`` ("full jitter": workers that failed together do not retry
    together). A failure is retryable when the exception is an instance of one of
    ``retry_on`` or its ``code`` (as :func:`taskmanager.processor.task_error` reads it) is
    in ``retry_codes``; anything else fails the task at once."""

    attempts: int = 3
    backoff_seconds: float = DEFAULT_BACKOFF_SECONDS
    multiplier: float = 2.0
    max_backoff_seconds: float = DEFAULT_MAX_BACKOFF_SECONDS
    retry_on: tuple[type[BaseException], ...] = ()
    #: Any collection of codes (a set, a list); kept as a frozenset.
    retry_codes: Collection[str] = frozenset()

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be at least 1, got {self.attempts}")
        if self.backoff_seconds < 0 or self.max_backoff_seconds < 0:
            raise ValueError("RetryPolicy backoffs must not be negative")
        if self.multiplier < 1:
            raise ValueError(f"RetryPolicy.multiplier must be at least 1, got {self.multiplier}")
        # A list or set given for the codes reads the same.
        object.__setattr__(self, "retry_codes", frozenset(self.retry_codes))

    def is_retryable(self, exc: BaseException, code: str) -> bool:
        """Whether a failure with this exception and error code may be tried again."""
        return isinstance(exc, self.retry_on) or code in self.retry_codes

    def backoff(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        ceiling = min(
            self.max_backoff_seconds, self.backoff_seconds * self.multiplier ** (retry - 1)
        )
        return (rng or random).uniform(0.0, ceiling)


#: The default: the function is called once; a failure fails the task.
NO_RETRY: Final = RetryPolicy(attempts=1)
