"""The read-only tools: list_evaluators, list_log_scores and get_score, with their models.

They close the loop for an agent: find out what an evaluator takes before scoring
with it, and read back what was written. Each has a flat argument and result schema
and `readOnlyHint: true`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from pydantic import BaseModel, ConfigDict, Field

from respan_mcp.client import path_segment
from respan_mcp.models import OutputModel, Score
from respan_mcp.tooling import READ, caller_key, model_tool, score_from, tool_answer, validated

if TYPE_CHECKING:
    from respan_mcp.evaluator_cache import Evaluator
    from respan_mcp.server import ServerState

DEFAULT_PAGE_SIZE = 20


class PageArgs(BaseModel):
    """Paging shared by the list tools."""

    model_config = ConfigDict(extra="forbid")

    page: int | None = Field(None, ge=1, description="Page number, from 1 (default 1).")
    page_size: int | None = Field(
        None, ge=1, le=100, description=f"Items per page, 1 to 100 (default {DEFAULT_PAGE_SIZE})."
    )


class ListEvaluators(PageArgs):
    """Arguments of `list_evaluators`."""

    search: str | None = Field(None, description="Part of an evaluator's slug or name to filter by.")


class ListLogScores(PageArgs):
    """Arguments of `list_log_scores`."""

    log_id: str = Field(min_length=1, description="ID of the log whose scores to list.")


class GetScore(BaseModel):
    """Arguments of `get_score`."""

    model_config = ConfigDict(extra="forbid")

    score_id: str = Field(min_length=1, description="ID of the score to read.")


class EvaluatorSummary(OutputModel):
    """One evaluator, as list_evaluators returns it: enough to pick the field and a valid value."""

    id: str = Field(description="Evaluator ID; pass it as evaluator_id.")
    evaluator_slug: str | None = Field(None, description="Evaluator slug; pass it as evaluator_slug.")
    name: str | None = Field(None, description="Human-readable name.")
    score_value_type: str | None = Field(None, description="The evaluator's type, e.g. numerical, boolean, single_select.")
    value_field: str | None = Field(None, description="The value field a score for this evaluator must use.")
    min_score: float | None = Field(None, description="Lowest allowed numerical_value, if bounded.")
    max_score: float | None = Field(None, description="Highest allowed numerical_value, if bounded.")
    choices: list[str] | None = Field(None, description="Allowed categorical_value entries, if any.")

    @classmethod
    def of(cls, evaluator: Evaluator) -> EvaluatorSummary:
        return cls(
            id=evaluator.id,
            evaluator_slug=evaluator.slug,
            name=evaluator.name,
            score_value_type=evaluator.score_value_type,
            value_field=evaluator.value_field,
            min_score=evaluator.min_score,
            max_score=evaluator.max_score,
            choices=list(evaluator.choices) if evaluator.choices else None,
        )


class EvaluatorPage(OutputModel):
    """A page of evaluators."""

    count: int = Field(description="How many evaluators match in all.")
    evaluators: list[EvaluatorSummary] = Field(description="This page's evaluators.")
    next_page: int | None = Field(None, description="The page to ask for next, if there are more.")


class ScorePage(OutputModel):
    """A page of a log's scores."""

    count: int = Field(description="How many scores the log has in all.")
    scores: list[Score] = Field(description="This page's scores.")
    next_page: int | None = Field(None, description="The page to ask for next, if there are more.")

    @classmethod
    def from_api(cls, data: Any, page: int) -> ScorePage:
        """A DRF page (`{count, next, previous, results}`), read leniently."""
        page_data = data if isinstance(data, dict) else {}
        results = [item for item in page_data.get("results") or [] if isinstance(item, dict) and "id" in item]
        return cls(
            count=page_data.get("count", len(results)),
            scores=[Score.model_validate(item) for item in results],
            next_page=page + 1 if page_data.get("next") else None,
        )


def read_tools(state: ServerState) -> list[Tool]:
    """The three read-only tools, over the server's one client and evaluator cache (calls tracked for draining)."""

    async def list_evaluators(ctx: Context, **arguments: Any) -> EvaluatorPage:
        query = validated(ListEvaluators, arguments)
        page_size = query.page_size or DEFAULT_PAGE_SIZE
        return await tool_answer(state.evaluators.search(query.search, query.page or 1, page_size, caller_key(ctx)))

    async def list_log_scores(ctx: Context, **arguments: Any) -> ScorePage:
        query = validated(ListLogScores, arguments)
        page = query.page or 1
        read = state.client.request(
            "GET",
            f"/logs/{path_segment(query.log_id)}/scores/",
            params={"page": page, "page_size": query.page_size or DEFAULT_PAGE_SIZE},
            api_key=caller_key(ctx),
            not_found=f"check that log_id '{query.log_id}' is a log in this Respan project",
        )
        return ScorePage.from_api(await tool_answer(read), page)

    async def get_score(ctx: Context, **arguments: Any) -> Score:
        query = validated(GetScore, arguments)
        return score_from(await tool_answer(state.client.get_score(query.score_id, api_key=caller_key(ctx))))

    return [
        model_tool(
            state.tracked(list_evaluators),
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
        model_tool(
            state.tracked(list_log_scores),
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
        model_tool(
            state.tracked(get_score),
            GetScore,
            Score,
            title="Read a score",
            annotations=READ,
            description=(
                "Read one score by its id (GET /api/scores/{score_id}/), e.g. to confirm what a write stored."
            ),
        ),
    ]
