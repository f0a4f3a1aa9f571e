"""The read tools: evaluators (what a score must be and means) and scores already written.

Each builds its own result page from what the client returns; the evaluator cache is told
what a listing found, since an agent scores next with what it just listed.
"""

from __future__ import annotations

from typing import Any

from respan_mcp import client as routes
from respan_mcp.arguments import DEFAULT_PAGE_SIZE, GetEvaluator, GetScore, ListEvaluators, ListLogScores
from respan_mcp.errors import NotFoundError
from respan_mcp.evaluator import Evaluator
from respan_mcp.evaluator_results import EvaluatorDetail, EvaluatorPage, EvaluatorSummary
from respan_mcp.results import Score, ScorePage
from respan_mcp.tools import READ, Call, Tool


async def list_evaluators(call: Call, query: ListEvaluators) -> EvaluatorPage:
    page = query.page or 1
    request = routes.search_evaluators(query.search, page, query.page_size or DEFAULT_PAGE_SIZE)
    data = await call.client.send(call.caller, request)
    # One odd evaluator must not spoil the page: each is read by type (Evaluator.from_api never raises), and
    # one a write could not name (no id or whole slug, or not an object at all) is left out and counted.
    listed = data.get("results") if isinstance(data, dict) else data
    found = [evaluator for item in routes.results(data) if (evaluator := Evaluator.from_api(item)).usable]
    skipped = (len(listed) if isinstance(listed, list) else 0) - len(found)
    call.evaluators.remember(found, call.caller)
    count = data.get("count") if isinstance(data, dict) else None
    return EvaluatorPage(
        count=count if isinstance(count, int) and not isinstance(count, bool) and count >= 0 else len(found),
        evaluators=[EvaluatorSummary.of(evaluator) for evaluator in found],
        next_page=page + 1 if isinstance(data, dict) and data.get("next") else None,
        skipped=skipped or None,
    )


async def get_evaluator(call: Call, query: GetEvaluator) -> EvaluatorDetail:
    """Nothing is guessed: an id or slug no evaluator has is an error that says where to look."""
    kind, value = ("id", query.evaluator_id) if query.evaluator_id else ("slug", query.evaluator_slug or "")
    evaluator = await call.evaluators.lookup((query.evaluator_id, query.evaluator_slug), call.caller)
    if evaluator is None:
        raise NotFoundError(
            f"no evaluator has {kind} '{value}'; list_evaluators shows the evaluators this key can see.", 404
        )
    return EvaluatorDetail.of(evaluator)


async def list_log_scores(call: Call, query: ListLogScores) -> ScorePage:
    page = query.page or 1
    request = routes.list_log_scores(query.log_id, page, query.page_size or DEFAULT_PAGE_SIZE)
    listed = ScorePage.from_api(await call.client.send(call.caller, request), page)
    # What each score's evaluator says (condition, range, choices), from the cache: the distinct evaluators
    # of the page looked up at once; one that cannot be looked up leaves its scores as Respan gave them.
    refs = [(score.evaluator_id, score.evaluator_slug) for score in listed.scores]
    known = await call.evaluators.many(refs, call.caller)
    listed.scores = [
        score.about(found if isinstance(found := known.get(ref), Evaluator) else None)
        for score, ref in zip(listed.scores, refs, strict=True)
    ]
    return listed


async def get_score(call: Call, query: GetScore) -> Score:
    return Score.from_answer(await call.client.send(call.caller, routes.get_score(query.score_id)))


TOOLS: tuple[Tool[Any], ...] = (
    Tool(
        "list_evaluators",
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
        "get_evaluator",
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
        "list_log_scores",
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
        "get_score",
        get_score,
        GetScore,
        Score,
        title="Read a score",
        annotations=READ,
        description="Read one score by its id (GET /api/scores/{score_id}/), e.g. to confirm what a write stored.",
    ),
)
