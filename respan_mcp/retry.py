"""The one retry policy: what is worth trying again, how long to wait, and when to give up.

Single writes, reads and the batch engine all wait by this policy, so an agent sees one
behaviour whatever tool it called. Every write is idempotent (the upsert is keyed by log,
evaluator and scorer; PATCH sets values), so a request that may or may not have reached
Respan (a read timeout, a dropped connection) is safe to send again.

Time comes from a `Clock` (the event loop's by default) and randomness from an injected
source, so tests can run every wait without spending wall-clock time.
"""

from __future__ import annotations

import email.utils
import math
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import anyio
import httpx2

from respan_mcp.config import Config

# 429: the rate limit lifts; 500 and 502-504: a proxy or the backend was briefly unwell.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

# Transport failures where trying again can help: nothing answered in time, the connection
# failed or dropped mid-answer. (A wrong URL scheme or an unsendable header cannot get better.)
RETRY_EXCEPTIONS: tuple[type[BaseException], ...] = (
    httpx2.TimeoutException,
    httpx2.NetworkError,
    httpx2.RemoteProtocolError,
    ConnectionError,  # a transport that lets the socket's own error through
    TimeoutError,  # our own whole-request deadline
)

LONGEST_RETRY_AFTER = 86_400.0  # a day: a longer ask is read as a day, so a message never shows a 300-digit wait
_SECONDS = re.compile(r"\d+(\.\d+)?")


class Clock(Protocol):
    """Where the batch and the retry loop read the time and sleep."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class EventLoopClock:
    """The event loop's monotonic clock: the one anyio's own timeouts use."""

    def now(self) -> float:
        return anyio.current_time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))


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
    def from_config(cls, config: Config, **overrides: Any) -> RetryPolicy:
        return cls(attempts=max(1, config.max_retries + 1), **overrides)

    def with_retries(self, retries: int | None) -> RetryPolicy:
        """The same policy with `retries` retries (None: unchanged); the batch engine sends with 0."""
        return self if retries is None else replace(self, attempts=max(1, retries + 1))

    def backoff(self, attempt: int) -> float:
        """The wait after failed try number `attempt` (1 for the first) when the API named none."""
        exponent = min(max(attempt, 1) - 1, 60)  # 2**60 s is past any cap; bounded so it stays a float
        return min(self.cap, self.base * 2.0**exponent * (0.5 + self.random()))

    def delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before trying again after failed try number `attempt`, or None to give up.

        Gives up when the tries are spent, or when the API asked for a longer wait than
        `max_wait` (the error's message says when to come back).
        """
        if attempt >= self.attempts:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_wait else None
        return self.backoff(attempt)


    def fits(self, spent: float, wait: float, attempt_timeout: float) -> bool:
        """Whether another try, after `wait` and taking up to `attempt_timeout`, ends within the budget."""
        return spent + wait + attempt_timeout <= self.budget


def retryable_status(status: int) -> bool:
    return status in RETRY_STATUSES


def retryable_exception(exc: BaseException) -> bool:
    return isinstance(exc, RETRY_EXCEPTIONS)


def parse_retry_after(value: object, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a `Retry-After` header or a body's `retry_after`; None when unreadable.

    Readable: a non-negative number of seconds (`30`, `1.5`) or an HTTP date in the future.
    Anything else (`soon`, `0x10`, `inf`, `nan`, `-5`, a date already past) is None, and the
    caller falls back to its own backoff rather than failing on the API's odd header.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        seconds = float(min(value, LONGEST_RETRY_AFTER))  # a 400-digit int is past what a float holds
    elif isinstance(value, float):
        seconds = value
    elif isinstance(value, str):
        text = value.strip()
        if _SECONDS.fullmatch(text):
            seconds = min(float(text), LONGEST_RETRY_AFTER)  # 400 digits read as inf: that is a long wait
        else:
            until = _date_seconds(text, now)
            if until is None or until <= 0:
                return None
            seconds = until
    else:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, LONGEST_RETRY_AFTER)


def _date_seconds(text: str, now: Callable[[], float]) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None or when.tzinfo is None:  # RFC 9110 dates are GMT; a zoneless one is not one of them
        return None
    try:
        return when.timestamp() - now()
    except (OverflowError, OSError, ValueError):
        return None
