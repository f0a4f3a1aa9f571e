"""The score writes: each prepared once into a `PreparedWrite`, then sent, planned or batched.

`prepare_upsert` and `prepare_update` are the one place a write is checked: the core value
rules once (values.py), then the evaluator's own rules once (evaluator.py), with the
evaluator found through the cache. What comes out holds everything below needs: the request
(the client's route, with its not-found wording), the value field, and the evaluator it was
checked against. A single write sends it, a dry run renders it, a batch queues it; each turns
the answer into a result through the same `PreparedWrite.result`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from respan_mcp import client as routes
from respan_mcp.arguments import BatchWrite, LogScoreUpsert, LogScoreWrite, ScoreUpdate
from respan_mcp.batch import write_batch
from respan_mcp.batch_report import check_batch
from respan_mcp.client import Request
from respan_mcp.config import BATCH_DEADLINE_MAX
from respan_mcp.errors import NotFoundError, RespanError, ScoreValueError, refuses_key
from respan_mcp.evaluator import Evaluator
from respan_mcp.evaluator_cache import Ref
from respan_mcp.results import BatchResult, DryRun, PlannedRequest, WriteResult
from respan_mcp.tools import Call, Tool
from respan_mcp.values import PAIRING_TABLE_TEXT, VALUE_FIELDS

logger = logging.getLogger(__name__)

# Arguments of a log score write that are not part of its request body.
_NOT_IN_BODY: set[str] = {"log_id", "score_value_type", "dry_run", *VALUE_FIELDS}


@dataclass(frozen=True)
class PreparedWrite:
    """A write after every check that can be made before sending: what to send, and what it was checked against."""

    request: Request
    value_field: str
    evaluator: Evaluator | None  # None when unknown: a custom slug, or the lookup failed

    def dry_run(self, api_path: str) -> DryRun:
        """The request as it would reach Respan (under the base URL's own path, `api_path`), and whether its
        value would pass the evaluator's condition, when that can be told."""
        body = self.request.body or {}
        request = PlannedRequest(method=self.request.method, path=api_path + self.request.path, body=body)
        if self.evaluator is None:
            return DryRun(request=request)
        return DryRun(
            request=request,
            would_pass=self.evaluator.passes(body.get(self.value_field)),
            passing_condition=self.evaluator.condition_text(),
        )

    def result(self, answer: Any) -> WriteResult:
        """Respan's answer to this write, with what its evaluator says (condition, range, choices)."""
        return WriteResult.from_answer(answer, wrote=True).about(self.evaluator)


def upsert_body(write: LogScoreWrite) -> tuple[str, Any, dict[str, Any]]:
    """The value field, the value and the request body of a log score write, by the core rules alone.

    Raises ScoreValueError saying what to send instead."""
    if bool(write.evaluator_id) == bool(write.evaluator_slug):
        got = "both" if write.evaluator_id else "neither"
        raise ScoreValueError(
            f"give exactly one of evaluator_id or evaluator_slug (got {got}): evaluator_id for a platform "
            "evaluator, evaluator_slug for a custom score or when you know only the slug"
        )
    field, value = write.checked_value()
    return field, value, write.model_dump(mode="json", exclude_none=True, exclude=_NOT_IN_BODY) | {field: value}


async def prepare_upsert(call: Call, write: LogScoreWrite) -> PreparedWrite:
    """An upsert_log_score (or a batch item), checked; raises ScoreValueError saying what to send instead."""
    field, value, body = upsert_body(write)
    evaluator = await _evaluator_for(call, (write.evaluator_id, write.evaluator_slug))
    if evaluator is not None:
        evaluator.check(field, value, write.score_value_type)
    return PreparedWrite(routes.upsert_log_score(write.log_id, body), field, evaluator)


async def prepare_update(call: Call, update: ScoreUpdate) -> PreparedWrite:
    """An update_score, checked against the score's own evaluator (read through the score) when the caller
    does not state its type; with a stated type nothing is read first, so the update is one request."""
    field, value = update.checked_value()
    request = routes.update_score(update.score_id, {field: value})  # an id that is no path segment stops here
    evaluator = None if update.score_value_type else await _evaluator_of_score(call, update.score_id)
    if evaluator is not None:
        evaluator.check(field, value, update.score_value_type)
    return PreparedWrite(request, field, evaluator)


async def _evaluator_for(call: Call, ref: Ref) -> Evaluator | None:
    """The evaluator a write names, or None when unknown. A failed lookup never blocks a write (the core
    rules apply, and the API has the last word), unless the key itself is refused: the write would be too."""
    try:
        return await call.evaluators.lookup(ref, call.caller)
    except RespanError as exc:
        if refuses_key(exc):
            raise
        logger.warning("evaluator %r could not be looked up (%s); the write is checked with the core rules only", ref, exc)
        return None


async def _evaluator_of_score(call: Call, score_id: str) -> Evaluator | None:
    """The evaluator of an existing score (update_score names none). An unknown score is refused here (the
    PATCH would be too); any other failure to read it leaves the update to the core rules."""
    try:
        score = await call.client.send(call.caller, routes.get_score(score_id), call.client.retry.once())
    except NotFoundError:
        raise
    except RespanError as exc:
        if refuses_key(exc):
            raise
        logger.warning("score %r could not be read (%s); checking with the core rules only", score_id, exc)
        return None
    if not isinstance(score, dict):
        return None
    embedded: dict[str, Any] = score["evaluator"] if isinstance(score.get("evaluator"), dict) else {}
    if embedded.get("score_value_type") and any(k in embedded for k in ("score_config", "configurations", "categorical_choices")):
        return Evaluator.from_api(embedded)  # complete: no lookup needed
    ref = (score.get("evaluator_id") or embedded.get("id"), score.get("evaluator_slug") or embedded.get("evaluator_slug"))
    evaluator = await _evaluator_for(call, ref)
    if evaluator is None and embedded.get("score_value_type"):
        return Evaluator.from_api(embedded)  # at least its type
    return evaluator


# -- the tools ---------------------------------------------------------------------------------------


async def upsert_log_score(call: Call, write: LogScoreUpsert) -> WriteResult:
    prepared = await prepare_upsert(call, write)
    if write.dry_run:
        return WriteResult(dry_run=prepared.dry_run(call.client.api_path))
    return prepared.result(await call.client.send(call.caller, prepared.request))


async def update_score(call: Call, update: ScoreUpdate) -> WriteResult:
    prepared = await prepare_update(call, update)
    if update.dry_run:
        return WriteResult(dry_run=prepared.dry_run(call.client.api_path))
    result = prepared.result(await call.client.send(call.caller, prepared.request))
    if prepared.evaluator is not None:
        return result
    # The type was stated, so the evaluator was not read before the write: the answer names it, and
    # its condition comes from the cache; a lookup after a write never fails the write.
    try:
        return result.about(await call.evaluators.lookup((result.evaluator_id, result.evaluator_slug), call.caller))
    except RespanError:
        return result


async def upsert_log_scores(call: Call, batch: BatchWrite) -> BatchResult:
    deadline = min(batch.deadline_seconds or call.config.batch_deadline, BATCH_DEADLINE_MAX)
    if batch.dry_run:

        async def plan(item: LogScoreWrite) -> DryRun:
            return (await prepare_upsert(call, item)).dry_run(call.client.api_path)

        return await check_batch(batch.scores, plan=plan, deadline=deadline, max_in_flight=call.config.max_concurrency)

    async def prepare(item: LogScoreWrite) -> PreparedWrite:
        return await prepare_upsert(call, item)

    return await write_batch(call, batch.scores, prepare=prepare, deadline=deadline)


TOOLS: tuple[Tool[Any], ...] = (
    Tool(
        "upsert_log_score",
        upsert_log_score,
        LogScoreUpsert,
        WriteResult,
        title="Score a log",
        description=(
            "Create or update the score a Respan log has for one evaluator (POST /api/logs/{log_id}/scores/). "
            "One score is kept per log, evaluator and API key: calling again with the same log_id and "
            "evaluator updates it, so retrying is safe. Give evaluator_id or evaluator_slug, and exactly one "
            f"value field matching the evaluator's score_value_type ({PAIRING_TABLE_TEXT}). "
            "Call list_evaluators first if you do not know the evaluator's type; the value is checked "
            "against the evaluator's type, range and choices before anything is sent. "
            "Returns the stored score (its id is what update_score takes), with is_passed (Respan's verdict) and "
            "the evaluator's passing_condition. With dry_run: true nothing is written: the result shows the exact "
            "request and whether the value would pass."
        ),
    ),
    Tool(
        "update_score",
        update_score,
        ScoreUpdate,
        WriteResult,
        title="Change a score",
        description=(
            "Change the value of an existing score by its id (PATCH /api/scores/{score_id}/). Only the value "
            f"can change: send exactly one value field, the one its evaluator takes ({PAIRING_TABLE_TEXT}). "
            "Without score_value_type the score's evaluator is read and the value checked against it. "
            "Returns the updated score, with is_passed and passing_condition. With dry_run: true nothing is "
            "written: the result shows the exact request and whether the value would pass."
        ),
    ),
    Tool(
        "upsert_log_scores",
        upsert_log_scores,
        BatchWrite,
        BatchResult,
        title="Score many logs",
        description=(
            "Write up to 500 scores in one call, each item with the same fields as upsert_log_score. Every "
            "item is checked first (invalid ones are reported by index and never sent); valid ones are "
            "written concurrently, slowing down together when Respan rate-limits. The call returns by "
            "deadline_seconds with one result per item (written, invalid, failed, deferred or superseded); send the "
            "deferred items again after retry_after_seconds (safe: writes are idempotent upserts). Each written "
            "score carries is_passed and passing_condition. Items naming the same log_id and evaluator (by id or slug) "
            "write one score: the last such valid item is sent and the earlier ones come back superseded, never "
            "sent. With dry_run: true nothing is written: each item comes "
            "back valid or invalid, with the exact request and whether its value would pass."
        ),
    ),
)
