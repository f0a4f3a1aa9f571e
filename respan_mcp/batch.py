"""`upsert_log_scores`: many scores in one call that always returns before the host gives up.

Respan allows 60 requests a minute per organisation and most MCP clients abandon a
call after about 60 seconds, so a large batch cannot wait out rate limits inside one
call. Items are written concurrently; a 429 pauses the whole batch (one shared
back-off); whatever is not written by the deadline comes back as `deferred`, to be
sent again (every write is an idempotent upsert, so that is always safe). When the
server is shutting down, the batch stops starting writes and answers within the grace
period, so the agent still learns what was written.

Retries follow the client's `RetryPolicy` and every wait goes through the client's
`Clock`, the same ones single writes use.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import anyio
from pydantic import ValidationError

from respan_mcp.arguments import LogScoreWrite
from respan_mcp.batch_items import SUPERSEDED, Target, claim, parse_item, targets
from respan_mcp.batch_report import MARGIN, summary
from respan_mcp.client import Request
from respan_mcp.config import BATCH_DEADLINE_MAX, SHUTDOWN_GRACE
from respan_mcp.errors import PermissionDeniedError, RateLimitError, RespanError, UnexpectedAnswerError, refuses_key
from respan_mcp.evaluator import Evaluator
from respan_mcp.net import redact
from respan_mcp.results import BatchResult, BatchStatus, ItemResult, Score
from respan_mcp.retry import Clock
from respan_mcp.schema import describe_invalid
from respan_mcp.tools import Call

# Seconds a shutdown leaves a running batch to report: half the server's grace, so that the rest is
# left for its answer to be written out before the process exits.
GRACE = SHUTDOWN_GRACE / 2

logger = logging.getLogger(__name__)


class Prepared(Protocol):
    """A write checked and ready to send (`writes.PreparedWrite`)."""

    @property
    def request(self) -> Request: ...

    @property
    def evaluator(self) -> Evaluator | None: ...

    def result(self, answer: Any) -> Score: ...


Item = tuple[int, Prepared]


UNKNOWN = (
    "failed inside respan-mcp ({}); whether it reached Respan is unknown: read back with list_log_scores before "
    "sending it again"
)
UNREADABLE = (
    "Respan accepted the write (it answered with success), so it happened, but its answer could not be read ({}); "
    "list_log_scores shows what was stored"
)


def accepted(error: RespanError) -> bool:
    """Whether Respan answered the write with success, though the answer itself could not be read."""
    return isinstance(error, UnexpectedAnswerError) and error.status is not None and 200 <= error.status < 300


class _OutOfTime(Exception):
    """A wait would pass the deadline, or the server is shutting down: the item is deferred."""


async def write_batch(
    call: Call,
    raw_items: Sequence[Any],
    *,
    prepare: Callable[[LogScoreWrite], Awaitable[Prepared]],
    deadline: float,
    grace: float = GRACE,
) -> BatchResult:
    """Check every item, write the valid ones concurrently, and return by `deadline` seconds.

    At least one valid item is always sent, however small the deadline, so calling again
    always makes progress. When the server is shutting down, no new write starts and the call
    returns within `grace` seconds (less a margin) with what was not written deferred.
    """
    return await _Batch(call, raw_items, prepare, deadline, grace).run()


class _Batch:
    """One call's state: what is queued, in flight and decided, and the two watches that end it.

    It is also the retry policy of its writes (`retry.Retrying`): each item goes through the
    client's one loop, with waits that every worker shares (a 429 slows the whole batch) and
    that end at the deadline or at shutdown, when the item is deferred.
    """

    def __init__(
        self,
        call: Call,
        raw_items: Sequence[Any],
        prepare: Callable[[LogScoreWrite], Awaitable[Prepared]],
        deadline: float,
        grace: float,
    ) -> None:
        self.call, self.raw_items, self.prepare, self.grace = call, raw_items, prepare, grace
        self.clock: Clock = call.client.clock
        self.policy = call.client.retry
        self.end = self.clock.now() + min(deadline, BATCH_DEADLINE_MAX) - MARGIN
        self.results: list[ItemResult | None] = [None] * len(raw_items)
        self.queue: deque[Item] = deque()
        self.in_flight: set[int] = set()
        self.pause_until = self.clock.now()  # one pause for every worker: a 429 slows the whole batch
        self.rate_limited = 0  # 429s in a row, for the backoff when Respan names no wait
        self.stop: RespanError | None = None  # the key was refused: the rest would fail the same way
        self.written = 0
        self.tried = anyio.Event()  # a write came back: only now may the deadline cut writes off
        self.validating = anyio.CancelScope()
        self.writing = anyio.CancelScope()
        self.pauses: set[anyio.CancelScope] = set()
        self.claims: dict[Target, int] = {}  # which item writes each score: the last valid one naming it
        self.replaced_by: dict[int, int] = {}

    @property
    def late(self) -> bool:
        return self.clock.now() >= self.end

    @property
    def stopping(self) -> bool:
        """The server is shutting down: read from the event itself, so it holds before any watch has run."""
        return self.call.shutting_down is not None and self.call.shutting_down.is_set()

    async def run(self) -> BatchResult:
        async with anyio.create_task_group() as watches:
            watches.start_soon(self._watch_deadline)
            if self.call.shutting_down is not None:
                watches.start_soon(self._watch_shutdown, self.call.shutting_down)
            with self.validating:
                await self._validate()
            if self.queue and self.stop is None and not self.stopping:
                with self.writing:
                    async with anyio.create_task_group() as workers:
                        for _ in range(min(max(1, self.call.config.max_concurrency), len(self.queue))):
                            workers.start_soon(self._worker)
            watches.cancel_scope.cancel()
        return self._report()

    async def _watch_deadline(self) -> None:
        await self.clock.sleep(self.end - self.clock.now())
        if self.queue:
            self.validating.cancel()  # a valid item is waiting: stop checking the rest
        await self.tried.wait()  # never cut off before one write has been tried
        self.writing.cancel()

    async def _watch_shutdown(self, event: anyio.Event) -> None:
        await event.wait()
        self.validating.cancel()
        for pause in list(self.pauses):
            pause.cancel()
        await self.clock.sleep(self.grace - MARGIN)  # writes in flight may finish until then
        self.writing.cancel()

    async def _validate(self) -> None:
        for index, raw in enumerate(self.raw_items):
            if self.stopping or (self.late and self.queue):
                return  # what is left unchecked is deferred
            try:
                item = parse_item(raw)
                prepared = await self.prepare(item)
                self._supersede(index, targets(item, prepared.evaluator))
                self.queue.append((index, prepared))
            except ValidationError as exc:
                self._decide(index, "invalid", describe_invalid(exc, LogScoreWrite))
            except ValueError as exc:  # ScoreValueError included: the item breaks a rule, and says which
                self._decide(index, "invalid", str(exc))
            except RespanError as exc:
                if refuses_key(exc):
                    self.stop = exc
                    return
                self._decide(index, "failed", str(exc))  # the check could not be made for this item alone

    def _supersede(self, index: int, names: set[Target]) -> None:
        """Item `index` writes these scores: an earlier item writing one of them is not sent, so the later value
        is the one kept however the requests race (nothing is sent before every item is checked)."""
        replaced = claim(self.claims, self.replaced_by, index, names)
        if replaced:
            self.queue = deque(entry for entry in self.queue if entry[0] not in replaced)
            for earlier in replaced:
                self._decide(earlier, "superseded", SUPERSEDED.format(index))

    async def _worker(self) -> None:
        while self.queue and self.stop is None and not self.stopping:
            if self.late and (self.tried.is_set() or self.in_flight):
                return  # past the deadline, and an item has been tried: the rest is deferred
            wait = self.pause_until - self.clock.now()
            if wait > 0:
                if self.clock.now() + wait >= self.end:
                    return  # the wait would pass the deadline: the rest is deferred
                await self._pause(wait)
                continue
            index, prepared = self.queue.popleft()
            self.in_flight.add(index)
            try:
                await self._write(index, prepared)
            except _OutOfTime:
                self.queue.appendleft((index, prepared))  # deferred, as its turn had not come
                self.in_flight.discard(index)
                return
            finally:
                self.tried.set()
            self.in_flight.discard(index)  # not when cut off: the report says its request was cut

    async def _pause(self, seconds: float) -> None:
        with anyio.CancelScope() as scope:  # a shutdown ends the pause at once
            self.pauses.add(scope)
            try:
                await self.clock.sleep(seconds)
            finally:
                self.pauses.discard(scope)

    async def _write(self, index: int, prepared: Prepared) -> None:
        """Send one item and decide it alone: whatever its answer holds, nothing here fails another item."""
        score: Score | None = None
        note: str | None = None
        try:
            answer = await self.call.client.send(self.call.caller, prepared.request, self)
        except RespanError as exc:
            if refuses_key(exc) or isinstance(exc, PermissionDeniedError):  # every other write would be refused too
                self.stop = exc
            if not accepted(exc):
                self._decide(index, "failed", str(exc))  # tried as the policy allows: this item fails
                return
            note = str(exc)  # Respan answered with success: written, though its answer cannot be read
        except _OutOfTime:
            raise  # the worker defers it
        except Exception as exc:  # a fault of ours, for this item alone
            logger.error("a batch write failed unexpectedly (%s)", type(exc).__name__)
            self._decide(index, "failed", UNKNOWN.format(type(exc).__name__))
            return
        else:
            self.rate_limited = 0
            try:
                score = prepared.result(answer)
            except Exception as exc:  # written, but the answer cannot be shown: said for this item alone
                note = str(exc) if isinstance(exc, RespanError) else UNREADABLE.format(type(exc).__name__)
        self.results[index] = ItemResult(
            index=index, status="written", score=score, error=None if note is None else redact(note, self.call.caller.secrets)
        )
        self.written += 1
        if self.call.progress is not None:
            await self.call.progress(self.written, len(self.raw_items))

    # -- the retry policy of the batch's writes (retry.Retrying) ------------------------------------

    def delay(self, error: RespanError, attempt: int) -> float | None:
        """A 429 pauses every worker for as long as Respan asks (however many in a row); any other failure is
        tried again by the client's policy, the wait shared too."""
        if isinstance(error, RateLimitError):
            self.rate_limited += 1
            asked = error.retry_after
            self._slow_down(asked if asked is not None else self.policy.backoff(self.rate_limited))
        else:
            wait = self.policy.delay(error, attempt)
            if wait is None:
                return None
            self._slow_down(wait)
        return max(0.0, self.pause_until - self.clock.now())

    def fits(self, spent: float, wait: float, attempt_timeout: float) -> bool:
        return True  # the batch's bound is its deadline, which `wait` and the watches keep

    async def wait(self, clock: Clock, seconds: float) -> None:
        if self.stopping or clock.now() + seconds >= self.end:
            raise _OutOfTime
        await self._pause(seconds)
        if self.stopping:
            raise _OutOfTime

    def _slow_down(self, seconds: float) -> None:
        self.pause_until = max(self.pause_until, self.clock.now() + seconds)

    def _decide(self, index: int, status: BatchStatus, error: str) -> None:
        self.results[index] = ItemResult(index=index, status=status, score=None, error=redact(error, self.call.caller.secrets))

    def _report(self) -> BatchResult:
        for index, result in enumerate(self.results):
            if result is not None:
                continue
            if self.stop is not None:
                self._decide(index, "failed", f"not sent: {self.stop}")
                continue
            cut = "cut off" if index in self.in_flight else "not started"
            why = f"the server is shutting down; its request was {cut}" if self.stopping else (
                "its request was cut off at the deadline" if index in self.in_flight else "the deadline came first"
            )
            self._decide(
                index, "deferred", f"not written yet ({why}); sending it again is safe, writes are idempotent upserts"
            )
        retry_after = max(0.0, self.pause_until - self.clock.now())
        return summary([r for r in self.results if r is not None], retry_after, shutting_down=self.stopping)
