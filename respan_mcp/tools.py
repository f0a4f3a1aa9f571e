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

import anyio
from mcp import types
from pydantic import BaseModel

from respan_mcp.batch import write_batch
from respan_mcp.client import RespanClient, path_segment
from respan_mcp.config import BATCH_DEADLINE_MAX, Config
from respan_mcp.evaluator_cache import EvaluatorCache
from respan_mcp.models import (
    DEFAULT_PAGE_SIZE,
    PAIRING_TABLE_TEXT,
    BatchWrite,
    GetScore,
    ListEvaluators,
    ListLogScores,
    LogScoreWrite,
    ScoreUpdate,
)
from respan_mcp.results import BatchResult, EvaluatorPage, Score, ScorePage
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

    async def checked_body(self, write: LogScoreWrite | ScoreUpdate) -> dict[str, Any]:
        """The request body for a write, after every check that can be made before sending.

        Single and batch writes both come through here, so a rule added here holds for both:
        the core pairing rules, then the evaluator's own type, range and choices when Respan
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
        return body


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


async def upsert_log_score(call: Call, write: LogScoreWrite) -> Score:
    body = await call.checked_body(write)
    answer = await call.client.upsert_log_score(write.log_id, body, api_key=call.api_key)
    return Score.from_answer(answer, wrote=True)


async def update_score(call: Call, update: ScoreUpdate) -> Score:
    body = await call.checked_body(update)
    answer = await call.client.update_score(update.score_id, body, api_key=call.api_key)
    return Score.from_answer(answer, wrote=True)


async def upsert_log_scores(call: Call, batch: BatchWrite) -> BatchResult:
    return await write_batch(
        call.client,
        batch.scores,
        check=call.checked_body,
        api_key=call.api_key,
        deadline=min(batch.deadline_seconds or call.config.batch_deadline, BATCH_DEADLINE_MAX),
        max_in_flight=call.config.max_concurrency,
        progress=call.progress,
    )


async def list_evaluators(call: Call, query: ListEvaluators) -> EvaluatorPage:
    page_size = query.page_size or DEFAULT_PAGE_SIZE
    return await call.evaluators.search(query.search, query.page or 1, page_size, call.api_key)


async def list_log_scores(call: Call, query: ListLogScores) -> ScorePage:
    page = query.page or 1
    data = await call.client.request(
        "GET",
        f"/logs/{path_segment(query.log_id)}/scores/",
        params={"page": page, "page_size": query.page_size or DEFAULT_PAGE_SIZE},
        api_key=call.api_key,
        not_found=f"check that log_id '{query.log_id}' is a log in this Respan project",
    )
    return ScorePage.from_api(data, page)


async def get_score(call: Call, query: GetScore) -> Score:
    return Score.from_answer(await call.client.get_score(query.score_id, api_key=call.api_key))


TOOLS: tuple[Tool[Any], ...] = (
    Tool(
        upsert_log_score,
        LogScoreWrite,
        Score,
        title="Score a log",
        description=(
            "Create or update the score a Respan log has for one evaluator (POST /api/logs/{log_id}/scores/). "
            "One score is kept per log, evaluator and API key: calling again with the same log_id and "
            "evaluator updates it, so retrying is safe. Give evaluator_id or evaluator_slug, and exactly one "
            f"value field matching the evaluator's score_value_type ({PAIRING_TABLE_TEXT}). "
            "Call list_evaluators first if you do not know the evaluator's type; the value is checked "
            "against the evaluator's type, range and choices before anything is sent. "
            "Returns the stored score; its id is what update_score takes."
        ),
    ),
    Tool(
        update_score,
        ScoreUpdate,
        Score,
        title="Change a score",
        description=(
            "Change the value of an existing score by its id (PATCH /api/scores/{score_id}/). Only the value "
            f"can change: send exactly one value field, the one its evaluator takes ({PAIRING_TABLE_TEXT}). "
            "Without score_value_type the score's evaluator is read and the value checked against it. "
            "Returns the updated score."
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
            "deferred items again after retry_after_seconds (safe: writes are idempotent upserts)."
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
            "score_value_type, the value_field to use, and its range (min_score..max_score) or choices. "
            "Call this first if you do not know an evaluator's type; filter with search (part of a slug or "
            "name). Then pass the evaluator's id or slug and its value_field to upsert_log_score."
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
            "for update_score."
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
