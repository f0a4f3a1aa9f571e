"""`upsert_log_scores`: many scores in one call that always returns before the host gives up.

Respan allows 60 requests a minute per organisation and most MCP clients abandon a
call after about 60 seconds, so a large batch cannot wait out rate limits inside one
call. Items are written concurrently; a 429 pauses the whole batch (one shared
back-off); whatever is not written by the deadline comes back as `deferred`, to be
sent again (every write is an idempotent upsert, so that is always safe).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from pydantic import ValidationError

from respan_mcp.client import RespanClient
from respan_mcp.config import BATCH_DEADLINE_MAX
from respan_mcp.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    MissingAPIKeyError,
    RateLimitError,
    RespanError,
    ServerError,
)
from respan_mcp.models import LogScoreWrite, ScoreValueError
from respan_mcp.results import BatchResult, ItemResult, NotAScoreError, Score
from respan_mcp.schema import describe_invalid

ATTEMPTS = 3  # per item, for 5xx, connection errors and timeouts; 429 is waited out until the deadline
MARGIN = 0.25  # seconds kept back from the deadline to assemble the answer


class _Stop(Exception):
    """The key was refused: sending the rest would fail the same way."""


async def write_batch(
    client: RespanClient,
    raw_items: list[Any],
    *,
    check: Callable[[LogScoreWrite], Awaitable[dict[str, Any]]],
    api_key: str | None,
    deadline: float,
    max_in_flight: int,
    progress: Callable[[int, int], Awaitable[None]] | None = None,
) -> BatchResult:
    """Validate every item, write the valid ones concurrently, and return by `deadline` seconds."""
    end = time.monotonic() + min(deadline, BATCH_DEADLINE_MAX) - MARGIN
    total = len(raw_items)
    results: list[ItemResult | None] = [None] * total
    queue: deque[tuple[int, LogScoreWrite, dict[str, Any]]] = deque()
    attempts = [0] * total
    in_flight: set[int] = set()
    pause_until = 0.0
    stop: RespanError | None = None

    with anyio.move_on_after(max(0.0, end - time.monotonic())):
        for index, raw in enumerate(raw_items):
            try:
                item = LogScoreWrite.model_validate(json.loads(raw) if isinstance(raw, str) else raw)
                queue.append((index, item, await check(item)))
            except ValidationError as exc:
                results[index] = ItemResult(index=index, status="invalid", error=describe_invalid(exc, LogScoreWrite))
            except (ScoreValueError, ValueError) as exc:
                results[index] = ItemResult(index=index, status="invalid", error=str(exc))
            except (AuthenticationError, MissingAPIKeyError) as exc:
                stop = exc
                break

    written = 0

    async def worker() -> None:
        nonlocal pause_until, stop, written
        while queue and stop is None:
            wait = pause_until - time.monotonic()
            if wait > 0:
                if time.monotonic() + wait >= end:
                    return  # the wait would pass the deadline: the rest is deferred
                await anyio.sleep(wait)
                continue
            index, item, body = queue.popleft()
            in_flight.add(index)
            try:
                answer = await client.upsert_log_score(item.log_id, body, api_key=api_key, max_retries=0)
            except RateLimitError as exc:
                delay = exc.retry_after if exc.retry_after is not None else 5.0
                pause_until = max(pause_until, time.monotonic() + delay)
                queue.appendleft((index, item, body))
            except (AuthenticationError, MissingAPIKeyError) as exc:
                stop = exc
                results[index] = ItemResult(index=index, status="failed", error=str(exc))
            except (ServerError, APIConnectionError, APITimeoutError) as exc:
                attempts[index] += 1
                if attempts[index] >= ATTEMPTS:
                    results[index] = ItemResult(index=index, status="failed", error=str(exc))
                else:
                    pause_until = max(pause_until, time.monotonic() + 0.25 * 2 ** attempts[index] * random.uniform(0.5, 1.5))
                    queue.append((index, item, body))
            except RespanError as exc:  # 400, 404, 422: this item only
                results[index] = ItemResult(index=index, status="failed", error=str(exc))
            else:
                try:
                    score = Score.from_answer(answer, wrote=True)
                except NotAScoreError as exc:  # written, but the answer cannot be shown: this item alone
                    results[index] = ItemResult(index=index, status="failed", error=str(exc))
                    continue
                results[index] = ItemResult(index=index, status="written", score=score)
                written += 1
                if progress is not None:
                    await progress(written, total)
            finally:
                in_flight.discard(index)

    if stop is None and queue:
        with anyio.move_on_after(max(0.0, end - time.monotonic())):
            async with anyio.create_task_group() as group:
                for _ in range(min(max_in_flight, len(queue))):
                    group.start_soon(worker)

    retry_after = max(0.0, pause_until - time.monotonic())
    for index in range(total):
        if results[index] is not None:
            continue
        if stop is not None:
            error = f"not sent: {stop}"
            results[index] = ItemResult(index=index, status="failed", error=error)
        else:
            why = "its request was cut off at the deadline" if index in in_flight else "the deadline came first"
            results[index] = ItemResult(
                index=index,
                status="deferred",
                error=f"not written yet ({why}); sending it again is safe, writes are idempotent upserts",
            )
    return _summary([r for r in results if r is not None], retry_after)


def _summary(results: list[ItemResult], retry_after: float) -> BatchResult:
    counts = {status: sum(r.status == status for r in results) for status in ("written", "invalid", "failed", "deferred")}
    summary = BatchResult(results=results, **counts)
    if counts["deferred"]:
        wait = math.ceil(retry_after)
        deferred = [r.index for r in results if r.status == "deferred"]
        summary.retry_after_seconds = float(wait)
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
    for index in indexes[1:] + [None]:  # type: ignore[list-item]
        if index is not None and index == previous + 1:
            previous = index
            continue
        parts.append(f"{start}-{previous}" if previous > start else str(start))
        if index is not None:
            start = previous = index
    return ", ".join(parts)
