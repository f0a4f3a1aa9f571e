"""Every tool: an argument model, an async function, and one entry in `TOOLS`.

A tool function gets a `Call` (the client, the evaluator cache and the key this call
uses) and its arguments already parsed by its model; it returns a result model. The
server's one call path (`server.call_tool`) does the rest: parsing, errors, the call
log and the count of calls in flight. Adding a tool is a model, a function and a line.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import anyio
from mcp import types
from pydantic import BaseModel

from respan_mcp.batch import check_batch, write_batch
from respan_mcp.client import RespanClient, log_scores_path, score_path
from respan_mcp.config import BATCH_DEADLINE_MAX, Config
from respan_mcp.errors import RespanError
from respan_mcp.evaluator import Evaluator
from respan_mcp.evaluator_cache import EvaluatorCache
from respan_mcp.models import (
    DEFAULT_PAGE_SIZE,
    PAIRING_TABLE_TEXT,
    BatchWrite,
    GetEvaluator,
    GetScore,
    ListEvaluators,
    ListLogScores,
    LogScoreUpsert,
    LogScoreWrite,
    ScoreUpdate,
)
from respan_mcp.results import (
    BatchResult,
    DryRun,
    EvaluatorDetail,
    EvaluatorPage,
    PlannedRequest,
    Score,
    ScorePage,
    WriteResult,
)
from respan_mcp.schema import flat_schema, structured_fields

ArgsT = TypeVar("ArgsT", bound=BaseModel)

WRITE = types.ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True)
READ = types.ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True)


@dataclass
class Call:
    """What a tool function works with: one per tool call."""

    config: Config
    client: RespanClient
    evaluators: EvaluatorCache
    api_key: str | None  # the caller's own key, or None for the server's
    progress: Callable[[float, float | None], Awaitable[None]] | None = None
    shutting_down: anyio.Event | None = None  # set when the process must end soon (stdio SIGTERM)

    async def checked(self, write: LogScoreWrite | ScoreUpdate) -> tuple[dict[str, Any], Evaluator | None]:
        """The request body for a write, after every check that can be made before sending, and the
        evaluator it was checked against (None when unknown: a custom slug, or the lookup failed).

        Single and batch writes, and their dry runs, all come through here, so a rule added here holds
        for each: the core pairing rules, then the evaluator's own type, range and choices when Respan
        describes it. Raises ScoreValueError with a message that says what to send instead.
        """
        body = write.request_body()
        if isinstance(write, LogScoreWrite):
            evaluator = await self.evaluators.for_write(write.evaluator_id, write.evaluator_slug, self.api_key)
        elif write.score_value_type is None:
            evaluator = await self.evaluators.for_score(write.score_id, self.api_key)
        else:
            evaluator = None
        if evaluator is not None:
            evaluator.check(write)
        return body, evaluator

    async def evaluator_of(self, score: Score) -> Evaluator | None:
        """A written score's evaluator from the cache, or None: a lookup after a write never fails the write."""
        try:
            return await self.evaluators.for_write(score.evaluator_id, score.evaluator_slug, self.api_key)
        except RespanError:
            return None

    def planned(self, method: str, path: str, body: dict[str, Any], evaluator: Evaluator | None) -> DryRun:
        """A dry run's answer: the request as it would reach Respan (under the base URL's own path, /api),
        and whether its value would pass the evaluator's condition, when that can be told."""
        full_path = urlsplit(self.config.api_url).path.rstrip("/") + path
        request = PlannedRequest(method=method, path=full_path, body=body)
        if evaluator is None:
            return DryRun(request=request)
        value = body.get(evaluator.value_field or "")
        return DryRun(request=request, would_pass=evaluator.passes(value), passing_condition=evaluator.condition_text())


@dataclass(frozen=True)
class Tool(Generic[ArgsT]):
    """A tool as the server publishes and runs it."""

    run: Callable[[Call, ArgsT], Awaitable[BaseModel]]
    arguments: type[ArgsT]
    result: type[BaseModel]
    title: str
    description: str
    annotations: types.ToolAnnotations = field(default_factory=lambda: WRITE)

    @property
    def name(self) -> str:
        return self.run.__name__

    @cached_property
    def input_schema(self) -> dict[str, Any]:
        return flat_schema(self.arguments)

    @cached_property
    def structured(self) -> frozenset[str]:
        """Arguments that a client may send as JSON text (arrays and objects)."""
        return structured_fields(self.input_schema)

    @cached_property
    def listing(self) -> types.Tool:
        return types.Tool(
            name=self.name,
            title=self.title,
            description=self.description,
            input_schema=self.input_schema,
            output_schema=flat_schema(self.result),
            annotations=self.annotations,
        )


async def upsert_log_score(call: Call, write: LogScoreUpsert) -> WriteResult:
    body, evaluator = await call.checked(write)
    if write.dry_run:
        return WriteResult(dry_run=call.planned("POST", log_scores_path(write.log_id), body, evaluator))
    answer = await call.client.upsert_log_score(write.log_id, body, api_key=call.api_key)
    return WriteResult.from_answer(answer, wrote=True).about(evaluator)


async def update_score(call: Call, update: ScoreUpdate) -> WriteResult:
    body, evaluator = await call.checked(update)
    if update.dry_run:
        return WriteResult(dry_run=call.planned("PATCH", score_path(update.score_id), body, evaluator))
    answer = await call.client.update_score(update.score_id, body, api_key=call.api_key)
    score = WriteResult.from_answer(answer, wrote=True)
    return score.about(evaluator or await call.evaluator_of(score))


async def upsert_log_scores(call: Call, batch: BatchWrite) -> BatchResult:
    deadline = min(batch.deadline_seconds or call.config.batch_deadline, BATCH_DEADLINE_MAX)
    if batch.dry_run:

        async def plan(item: LogScoreWrite) -> DryRun:
            body, evaluator = await call.checked(item)
            return call.planned("POST", log_scores_path(item.log_id), body, evaluator)

        return await check_batch(batch.scores, plan=plan, deadline=deadline, max_in_flight=call.config.max_concurrency)
    # The evaluators the items were checked against, by ("id", id) and ("slug", slug): each written score
    # is told its evaluator's condition without another lookup.
    checked_against: dict[tuple[str, str | None], Evaluator] = {}

    async def check(item: LogScoreWrite) -> dict[str, Any]:
        body, evaluator = await call.checked(item)
        if evaluator is not None:
            checked_against.update({("id", evaluator.id): evaluator, ("slug", evaluator.slug): evaluator})
        return body

    result = await write_batch(
        call.client,
        batch.scores,
        check=check,
        api_key=call.api_key,
        deadline=deadline,
        max_in_flight=call.config.max_concurrency,
        progress=call.progress,
        shutting_down=call.shutting_down,
    )
    for item in result.results:
        if item.score is not None:
            score = item.score
            evaluator = checked_against.get(("id", score.evaluator_id)) if score.evaluator_id else None
            if evaluator is None and score.evaluator_slug:
                evaluator = checked_against.get(("slug", score.evaluator_slug))
            item.score = score.about(evaluator)
    return result


async def list_evaluators(call: Call, query: ListEvaluators) -> EvaluatorPage:
    page_size = query.page_size or DEFAULT_PAGE_SIZE
    return await call.evaluators.search(query.search, query.page or 1, page_size, call.api_key)


async def get_evaluator(call: Call, query: GetEvaluator) -> EvaluatorDetail:
    return EvaluatorDetail.of(await call.evaluators.get(query.evaluator_id, query.evaluator_slug, call.api_key))


async def list_log_scores(call: Call, query: ListLogScores) -> ScorePage:
    page = query.page or 1
    data = await call.client.request(
        "GET",
        log_scores_path(query.log_id),
        params={"page": page, "page_size": query.page_size or DEFAULT_PAGE_SIZE},
        api_key=call.api_key,
        not_found=f"check that log_id '{query.log_id}' is a log in this Respan project",
    )
    listed = ScorePage.from_api(data, page)
    # What each score's evaluator says (condition, range, choices), from the cache: the distinct evaluators
    # of the page looked up at once; one that cannot be looked up leaves its scores as Respan gave them.
    refs = [(score.evaluator_id, score.evaluator_slug) for score in listed.scores]
    known = await call.evaluators.many(refs, call.api_key)
    listed.scores = [score.about(_evaluator(known.get(ref))) for score, ref in zip(listed.scores, refs, strict=True)]
    return listed


def _evaluator(answer: Evaluator | RespanError | None) -> Evaluator | None:
    return answer if isinstance(answer, Evaluator) else None


async def get_score(call: Call, query: GetScore) -> Score:
    return Score.from_answer(await call.client.get_score(query.score_id, api_key=call.api_key))


TOOLS: tuple[Tool[Any], ...] = (
    Tool(
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
        upsert_log_scores,
        BatchWrite,
        BatchResult,
        title="Score many logs",
        description=(
            "Write up to 500 scores in one call, each item with the same fields as upsert_log_score. Every "
            "item is checked first (invalid ones are reported by index and never sent); valid ones are "
            "written concurrently, slowing down together when Respan rate-limits. The call returns by "
            "deadline_seconds with one result per item (written, invalid, failed or deferred); send the "
            "deferred items again after retry_after_seconds (safe: writes are idempotent upserts). Each written "
            "score carries is_passed and passing_condition. With dry_run: true nothing is written: each item comes "
            "back valid or invalid, with the exact request and whether its value would pass."
        ),
    ),
    Tool(
        list_evaluators,
        ListEvaluators,
        EvaluatorPage,
        title="List evaluators",
        annotations=READ,
        description=(
            "List Respan evaluators with what a score for each must look like: its id and slug, "
            "score_value_type, the value_field to use, its range (min_score..max_score) or choices, its "
            "description and passing_condition. Call this first if you do not know an evaluator's type; filter "
            "with search (part of a slug or name). Then pass the evaluator's id or slug and its value_field to "
            "upsert_log_score. get_evaluator gives one evaluator whole, with its scoring rubric."
        ),
    ),
    Tool(
        get_evaluator,
        GetEvaluator,
        EvaluatorDetail,
        title="Read an evaluator",
        annotations=READ,
        description=(
            "Read one Respan evaluator whole, by evaluator_id or evaluator_slug (exactly one): its type, value_field, "
            "range or choices (name and value), what it measures (description), its scoring rubric (what each "
            "value means), its definition (what its grader looks at) and when a score passes (passing_condition, "
            "e.g. 'numerical_value >= 3', and as passing_operator and passing_value). Read it before grading "
            "against an evaluator, so the score means what the evaluator means."
        ),
    ),
    Tool(
        list_log_scores,
        ListLogScores,
        ScorePage,
        title="List a log's scores",
        annotations=READ,
        description=(
            "List the scores a Respan log has (GET /api/logs/{log_id}/scores/), a page at a time, "
            "with count and next_page. Use it to check what a log already has, or to find a score's id "
            "for update_score. Each score carries is_passed and, when its evaluator is known, its "
            "passing_condition, evaluator_range and evaluator_choices."
        ),
    ),
    Tool(
        get_score,
        GetScore,
        Score,
        title="Read a score",
        annotations=READ,
        description="Read one score by its id (GET /api/scores/{score_id}/), e.g. to confirm what a write stored.",
    ),
)
