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

import json
import math
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
from pydantic import ValidationError

from respan_mcp.client import RespanClient
from respan_mcp.config import BATCH_DEADLINE_MAX, SHUTDOWN_GRACE
from respan_mcp.errors import AuthenticationError, MissingAPIKeyError, RateLimitError, RespanError, redact
from respan_mcp.models import LogScoreWrite, ScoreValueError
from respan_mcp.results import BatchResult, BatchStatus, DryRun, ItemResult, NotAScoreError, Score
from respan_mcp.schema import describe_invalid

MARGIN = 0.25  # seconds kept back from the deadline (or the shutdown grace) to assemble the answer
# Seconds a shutdown leaves a running batch to report: half the server's grace, so that the rest is
# left for its answer to be written out before the process exits.
GRACE = SHUTDOWN_GRACE / 2



Item = tuple[int, LogScoreWrite, dict[str, Any]]


def parse_item(raw: Any) -> LogScoreWrite:
    """One item of `scores` (an object, or its JSON text) as a write; raises ValidationError or ValueError."""
    return LogScoreWrite.model_validate(json.loads(raw) if isinstance(raw, str) else raw)


async def write_batch(
    client: RespanClient,
    raw_items: list[Any],
    *,
    check: Callable[[LogScoreWrite], Awaitable[dict[str, Any]]],
    api_key: str | None,
    deadline: float,
    max_in_flight: int,
    progress: Callable[[int, int], Awaitable[None]] | None = None,
    shutting_down: anyio.Event | None = None,
    grace: float = GRACE,
) -> BatchResult:
    """Validate every item, write the valid ones concurrently, and return by `deadline` seconds.

    At least one valid item is always sent, however small the deadline, so calling again
    always makes progress. When `shutting_down` is set, no new write starts and the call
    returns within `grace` seconds (less a margin) with what was not written deferred.
    """
    run = _Batch(client, raw_items, check, api_key, deadline, max_in_flight, progress, shutting_down, grace)
    return await run.run()


class _Batch:
    """One call's state: what is queued, in flight and decided, and the two watches that end it."""

    def __init__(
        self,
        client: RespanClient,
        raw_items: list[Any],
        check: Callable[[LogScoreWrite], Awaitable[dict[str, Any]]],
        api_key: str | None,
        deadline: float,
        max_in_flight: int,
        progress: Callable[[int, int], Awaitable[None]] | None,
        shutting_down: anyio.Event | None,
        grace: float,
    ) -> None:
        self.client, self.raw_items, self.check, self.api_key = client, raw_items, check, api_key
        self.max_in_flight, self.progress, self.shutting_down, self.grace = max_in_flight, progress, shutting_down, grace
        self.clock, self.policy = client.clock, client.retry
        self.secrets = (api_key, client.config.api_key)
        self.end = self.clock.now() + min(deadline, BATCH_DEADLINE_MAX) - MARGIN
        self.results: list[ItemResult | None] = [None] * len(raw_items)
        self.queue: deque[Item] = deque()
        self.attempts = [0] * len(raw_items)  # per item: 5xx, connection errors, timeouts (not 429s)
        self.in_flight: set[int] = set()
        self.pause_until = self.clock.now()  # one pause for every worker: a 429 slows the whole batch
        self.rate_limited = 0  # 429s in a row, for the backoff when Respan names no wait
        self.stop: RespanError | None = None  # the key was refused: the rest would fail the same way
        self.written = 0
        self.tried = anyio.Event()  # a write came back: only now may the deadline cut writes off
        self.validating = anyio.CancelScope()
        self.writing = anyio.CancelScope()
        self.pauses: set[anyio.CancelScope] = set()

    @property
    def late(self) -> bool:
        return self.clock.now() >= self.end

    @property
    def stopping(self) -> bool:
        """The server is shutting down: read from the event itself, so it holds before any watch has run."""
        return self.shutting_down is not None and self.shutting_down.is_set()

    async def run(self) -> BatchResult:
        async with anyio.create_task_group() as watches:
            watches.start_soon(self._watch_deadline)
            if self.shutting_down is not None:
                watches.start_soon(self._watch_shutdown, self.shutting_down)
            with self.validating:
                await self._validate()
            if self.queue and self.stop is None and not self.stopping:
                with self.writing:
                    async with anyio.create_task_group() as workers:
                        for _ in range(min(self.max_in_flight, len(self.queue))):
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
                self.queue.append((index, item, await self.check(item)))
            except ValidationError as exc:
                self._decide(index, "invalid", describe_invalid(exc, LogScoreWrite))
            except (ScoreValueError, ValueError) as exc:
                self._decide(index, "invalid", str(exc))
            except (AuthenticationError, MissingAPIKeyError) as exc:
                self.stop = exc
                return
            except RespanError as exc:  # the check could not be made for this item alone
                self._decide(index, "failed", str(exc))

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
            index, item, body = self.queue.popleft()
            self.in_flight.add(index)
            try:
                await self._write(index, item, body)
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

    async def _write(self, index: int, item: LogScoreWrite, body: dict[str, Any]) -> None:
        try:
            answer = await self.client.upsert_log_score(item.log_id, body, api_key=self.api_key, max_retries=0)
        except RateLimitError as exc:
            self.rate_limited += 1
            self._slow_down(exc.retry_after if exc.retry_after is not None else self.policy.backoff(self.rate_limited))
            self.queue.appendleft((index, item, body))
        except (AuthenticationError, MissingAPIKeyError) as exc:
            self.stop = exc
            self._decide(index, "failed", str(exc))
        except RespanError as exc:
            self.attempts[index] += 1
            wait = self.policy.delay(self.attempts[index], exc.retry_after) if exc.retryable else None
            if wait is None:  # 400, 404, 422, or out of tries: this item only
                self._decide(index, "failed", str(exc))
            else:
                self._slow_down(wait)
                self.queue.append((index, item, body))
        else:
            self.rate_limited = 0
            await self._written(index, answer)

    async def _written(self, index: int, answer: Any) -> None:
        try:
            score = Score.from_answer(answer, wrote=True)
        except NotAScoreError as exc:  # written, but the answer cannot be shown: this item alone
            self._decide(index, "failed", str(exc))
            return
        self.results[index] = ItemResult(index=index, status="written", score=score, error=None)
        self.written += 1
        if self.progress is not None:
            await self.progress(self.written, len(self.raw_items))

    def _slow_down(self, seconds: float) -> None:
        self.pause_until = max(self.pause_until, self.clock.now() + seconds)

    def _decide(self, index: int, status: BatchStatus, error: str) -> None:
        self.results[index] = ItemResult(index=index, status=status, score=None, error=redact(error, self.secrets))

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
        return _summary([r for r in self.results if r is not None], retry_after, shutting_down=self.stopping)


def _summary(results: list[ItemResult], retry_after: float, *, shutting_down: bool = False) -> BatchResult:
    def count(status: BatchStatus) -> int:
        return sum(r.status == status for r in results)

    summary = BatchResult(
        results=results,
        written=count("written"),
        invalid=count("invalid"),
        failed=count("failed"),
        deferred=count("deferred"),
        retry_after_seconds=None,
        next_step=None,
    )
    if summary.deferred:
        wait = math.ceil(retry_after)
        deferred = [r.index for r in results if r.status == "deferred"]
        summary.retry_after_seconds = float(wait)
        items = f"the {len(deferred)} deferred items (indexes {_ranges(deferred)})"
        if shutting_down:
            summary.next_step = (
                f"the server is shutting down: call upsert_log_scores again with {items} once it is back; "
                "resending is safe, writes are idempotent upserts"
            )
        else:
            when = f"after {wait} s" if wait else "now"
            summary.next_step = (
                f"call upsert_log_scores again with the {len(deferred)} deferred items {when} "
                f"(indexes {_ranges(deferred)}); resending is safe, writes are idempotent upserts"
            )
    return summary


def _ranges(indexes: list[int]) -> str:
    """[0, 1, 2, 5] -> "0-2, 5": short enough for 500 items."""
    parts: list[str] = []
    start = previous = indexes[0]
    for index in [*indexes[1:], None]:
        if index is not None and index == previous + 1:
            previous = index
            continue
        parts.append(f"{start}-{previous}" if previous > start else str(start))
        if index is not None:
            start = previous = index
    return ", ".join(parts)


async def check_batch(
    raw_items: Sequence[Any],
    *,
    plan: Callable[[LogScoreWrite], Awaitable[DryRun]],
    deadline: float,
    max_in_flight: int,
) -> BatchResult:
    """The dry run of a batch: every item checked as `write_batch` would (concurrently, by the deadline),
    and `plan` says what it would send; nothing is written.

    A refused key fails the call once (every item would fail the same way).
    """
    results: list[ItemResult | None] = [None] * len(raw_items)
    refused: list[RespanError] = []
    limiter = anyio.CapacityLimiter(max(1, max_in_flight))

    async def check(index: int, raw: Any) -> None:
        try:
            item = parse_item(raw)
            async with limiter:
                planned = await plan(item)
        except ValidationError as exc:
            results[index] = ItemResult(index=index, status="invalid", error=describe_invalid(exc, LogScoreWrite))
        except (AuthenticationError, MissingAPIKeyError) as exc:
            refused.append(exc)
        except (ScoreValueError, ValueError, RespanError) as exc:
            results[index] = ItemResult(index=index, status="invalid", error=str(exc))
        else:
            results[index] = ItemResult(index=index, status="valid", dry_run=planned)

    with anyio.move_on_after(max(0.0, min(deadline, BATCH_DEADLINE_MAX) - MARGIN)):
        async with anyio.create_task_group() as group:
            for index, raw in enumerate(raw_items):
                group.start_soon(check, index, raw)
    if refused:
        raise refused[0]
    items = [
        result or ItemResult(index=index, status="deferred", error="not checked by the deadline; send it again")
        for index, result in enumerate(results)
    ]
    counts = {status: sum(item.status == status for item in items) for status in ("valid", "invalid", "deferred")}
    steps = ["dry run: nothing was written"]
    if counts["valid"]:
        steps.append(f"call upsert_log_scores without dry_run to write the {counts['valid']} valid items")
    if counts["invalid"]:
        steps.append(f"fix the {counts['invalid']} invalid items as their errors say")
    if counts["deferred"]:
        steps.append(f"{counts['deferred']} items were not checked by the deadline: send them again with dry_run")
    return BatchResult(
        results=items,
        written=0,
        failed=0,
        invalid=counts["invalid"],
        deferred=counts["deferred"],
        valid=counts["valid"],
        next_step="; ".join(steps),
    )
