"""The one retry policy: what is worth trying again, how long to wait, and when to give up.

Single writes, reads and every batch item go through the one loop in `RespanClient.send`
with a policy from here, so an agent sees one behaviour whatever tool it called. Every
write is idempotent (the upsert is keyed by log, evaluator and scorer; PATCH sets values),
so a request that may or may not have reached Respan (a read timeout, a dropped
connection) is safe to send again.

Whether a failure is worth another try is decided here, from its class alone: a rate limit,
a server failure (500, 502-504) and a dropped or timed-out connection are; a refusal, a
missing thing and our own checks are not.

Time comes from a `Clock` (the event loop's by default) and randomness from an injected
source, so tests can run every wait without spending wall-clock time.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

import anyio

from respan_mcp.errors import APIConnectionError, InternalServerError, RateLimitError, RespanError

# 500 and 502-504: a proxy or the backend was briefly unwell (501 and 505 will not get better).
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def retryable(error: RespanError) -> bool:
    """Whether trying the same request again can help: the one place this is decided."""
    if isinstance(error, RateLimitError | InternalServerError):
        return error.status in RETRY_STATUSES
    return isinstance(error, APIConnectionError)


class Clock(Protocol):
    """Where the batch and the retry loop read the time and sleep."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class EventLoopClock:
    """The event loop's monotonic clock: the one anyio's own timeouts use."""

    now = staticmethod(anyio.current_time)

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))


class Retrying(Protocol):
    """What `RespanClient.send` asks of a policy: `RetryPolicy`, or the batch's, which shares one pause."""

    def delay(self, error: RespanError, attempt: int) -> float | None: ...

    def fits(self, spent: float, wait: float, attempt_timeout: float) -> bool: ...

    async def wait(self, clock: Clock, seconds: float) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How many tries a request gets and how long to wait between them.

    `attempts` counts every try, the first included (RESPAN_MAX_RETRIES + 1). Waits grow
    from `base` seconds, doubling each try, with jitter (0.5x to 1.5x) so that many
    callers do not come back at the same instant, and never beyond `cap`. A wait the API
    asks for (`Retry-After`) is honoured up to `max_wait`; a longer one is not waited out
    inside a call: the call fails saying when to come back.
    """

    attempts: int = 4
    base: float = 0.25
    cap: float = 8.0
    max_wait: float = 20.0
    # Seconds one call may spend on all its tries: MCP hosts commonly give up on a tool call at
    # 60 s, and an answer after that reaches no one. A try is started only if it can end in time.
    budget: float = 50.0
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    @classmethod
    def for_retries(cls, retries: int) -> RetryPolicy:
        """The policy for RESPAN_MAX_RETRIES = `retries`."""
        return cls(attempts=max(1, retries + 1))

    def once(self) -> RetryPolicy:
        """This policy without retries: for a lookup that must never hold up the call it serves."""
        return replace(self, attempts=1)

    def backoff(self, attempt: int) -> float:
        """The wait after failed try number `attempt` (1 for the first) when the API named none."""
        exponent = min(max(attempt, 1) - 1, 60)  # 2**60 s is past any cap; bounded so it stays a float
        return min(self.cap, self.base * 2.0**exponent * (0.5 + self.random()))

    def delay(self, error: RespanError, attempt: int) -> float | None:
        """Seconds to wait before trying again after failed try number `attempt`, or None to give up.

        Gives up when the failure is not worth another try, when the tries are spent, or when
        the API asked for a longer wait than `max_wait` (the error's message says when to come back).
        """
        if not retryable(error) or attempt >= self.attempts:
            return None
        if error.retry_after is not None:
            return error.retry_after if error.retry_after <= self.max_wait else None
        return self.backoff(attempt)

    def fits(self, spent: float, wait: float, attempt_timeout: float) -> bool:
        """Whether another try, after `wait` and taking up to `attempt_timeout`, ends within the budget."""
        return spent + wait + attempt_timeout <= self.budget

    async def wait(self, clock: Clock, seconds: float) -> None:
        await clock.sleep(seconds)
