"""What `upsert_log_scores` answers: the report of a batch written, and the dry run of one.

Both end the same way, as a `BatchResult` counting each status and saying the next step. The
dry run (`check_batch`) checks every item as the write would, concurrently and by the deadline,
and reports what would be sent; it writes nothing, so it has none of the write's retry policy.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
from pydantic import ValidationError

from respan_mcp.arguments import LogScoreWrite
from respan_mcp.batch_items import SUPERSEDED, Target, claim, parse_item, targets
from respan_mcp.config import BATCH_DEADLINE_MAX
from respan_mcp.errors import RespanError, refuses_key
from respan_mcp.results import BatchResult, BatchStatus, DryRun, ItemResult
from respan_mcp.schema import describe_invalid

MARGIN = 0.25  # seconds kept back from the deadline (or the shutdown grace) to assemble the answer


def summary(results: list[ItemResult], retry_after: float, *, shutting_down: bool = False) -> BatchResult:
    """The report of a batch written: the counts, and for what was deferred when and how to send it again."""
    def count(status: BatchStatus) -> int:
        return sum(r.status == status for r in results)

    report = BatchResult(
        results=results,
        written=count("written"),
        invalid=count("invalid"),
        failed=count("failed"),
        deferred=count("deferred"),
        superseded=count("superseded") or None,
        retry_after_seconds=None,
        next_step=None,
    )
    if report.deferred:
        wait = math.ceil(retry_after)
        deferred = [r.index for r in results if r.status == "deferred"]
        report.retry_after_seconds = float(wait)
        items = f"the {len(deferred)} deferred items (indexes {ranges(deferred)})"
        if shutting_down:
            report.next_step = (
                f"the server is shutting down: call upsert_log_scores again with {items} once it is back; "
                "resending is safe, writes are idempotent upserts"
            )
        else:
            when = f"after {wait} s" if wait else "now"
            report.next_step = (
                f"call upsert_log_scores again with the {len(deferred)} deferred items {when} "
                f"(indexes {ranges(deferred)}); resending is safe, writes are idempotent upserts"
            )
    return report


def ranges(indexes: list[int]) -> str:
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
    names: dict[int, set[Target]] = {}
    refused: list[RespanError] = []
    limiter = anyio.CapacityLimiter(max(1, max_in_flight))

    async def check(index: int, raw: Any) -> None:
        try:
            item = parse_item(raw)
            names[index] = targets(item)
            async with limiter:
                planned = await plan(item)
        except ValidationError as exc:
            results[index] = ItemResult(index=index, status="invalid", error=describe_invalid(exc, LogScoreWrite))
        except RespanError as exc:
            if refuses_key(exc):
                refused.append(exc)
            else:
                results[index] = ItemResult(index=index, status="invalid", error=str(exc))
        except ValueError as exc:
            results[index] = ItemResult(index=index, status="invalid", error=str(exc))
        else:
            results[index] = ItemResult(index=index, status="valid", dry_run=planned)

    with anyio.move_on_after(max(0.0, min(deadline, BATCH_DEADLINE_MAX) - MARGIN)):
        async with anyio.create_task_group() as group:
            for index, raw in enumerate(raw_items):
                group.start_soon(check, index, raw)
    if refused:
        raise refused[0]
    claims: dict[Target, int] = {}
    replaced_by: dict[int, int] = {}
    for index, result in enumerate(results):  # as write_batch decides: the later valid item is the one sent
        if result is not None and result.status == "valid":
            for earlier in claim(claims, replaced_by, index, names[index]):
                results[earlier] = ItemResult(index=earlier, status="superseded", error=SUPERSEDED.format(index))
    items = [
        result or ItemResult(index=index, status="deferred", error="not checked by the deadline; send it again")
        for index, result in enumerate(results)
    ]
    counts = {
        status: sum(item.status == status for item in items) for status in ("valid", "invalid", "deferred", "superseded")
    }
    steps = ["dry run: nothing was written"]
    if counts["valid"]:
        steps.append(f"call upsert_log_scores without dry_run to write the {counts['valid']} valid items")
    if counts["invalid"]:
        steps.append(f"fix the {counts['invalid']} invalid items as their errors say")
    if counts["superseded"]:
        steps.append(f"{counts['superseded']} items would not be sent: a later item writes the same score")
    if counts["deferred"]:
        steps.append(f"{counts['deferred']} items were not checked by the deadline: send them again with dry_run")
    return BatchResult(
        results=items,
        written=0,
        failed=0,
        invalid=counts["invalid"],
        deferred=counts["deferred"],
        superseded=counts["superseded"] or None,
        valid=counts["valid"],
        next_step="; ".join(steps),
    )
