"""The prompts as the server serves them: `self_grade` and `grade_logs`, their listings, and completions.

`prompts/get` looks the named evaluators up with the caller's key, through the evaluator cache,
and hands what it found to `prompt_text`, which words the prompt; `self_grade` without a log_id
also hands over the trace the request came from (`_meta.traceparent`), so the agent can find its
own run. Completions offer evaluator slugs for either prompt's `evaluators`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp import types
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError

from respan_mcp import client as routes
from respan_mcp.client import Caller, RespanClient
from respan_mcp.errors import RespanError
from respan_mcp.evaluator import Evaluator
from respan_mcp.evaluator_cache import EvaluatorCache
from respan_mcp.prompt_text import SLUG_LIMIT, grade_logs_text, named_slugs, self_grade_text, to_look_up
from respan_mcp.results import one_line
from respan_mcp.tools import trace_id

EVALUATORS = "Comma-separated evaluator slugs to score on."
RUBRIC = types.PromptArgument(name="rubric", description="What good looks like, in your words.", required=False)
SELF_GRADE = types.Prompt(
    name="self_grade",
    title="Grade your own run",
    description="Grade your own run in Respan: learn each evaluator, judge honestly, write the scores, report them.",
    arguments=[
        types.PromptArgument(
            name="log_id",
            description="ID of the Respan log (span) of the run to grade; without it, the prompt says how to find "
            "your run (by the trace this request came from, or your run's identifiers).",
            required=False,
        ),
        types.PromptArgument(name="evaluators", description=EVALUATORS, required=False),
        RUBRIC,
    ],
)
GRADE_LOGS = types.Prompt(
    name="grade_logs",
    title="Grade many logs",
    description="Grade many Respan logs on the evaluators you name: find them, read each, judge, write the "
    "scores in batches, report.",
    arguments=[
        types.PromptArgument(name="evaluators", description=EVALUATORS, required=True),
        types.PromptArgument(
            name="logs",
            description="Which logs to grade, in your words (e.g. 'yesterday's support runs in production').",
            required=False,
        ),
        RUBRIC,
    ],
)
PROMPTS = {prompt.name: prompt for prompt in (SELF_GRADE, GRADE_LOGS)}
MAX_COMPLETIONS = 100  # the most values a completion may carry
COMPLETION_LIMIT = 2000  # a longer argument gets no completions: each value repeats it


def complete_slugs(partial: str, slugs: list[str]) -> list[str]:
    """Completions for a comma-separated list: the earlier entries kept, the last one completed."""
    if len(partial) > COMPLETION_LIMIT:
        return []
    done, _, current = partial.rpartition(",")
    prefix = f"{done}, " if done else ""
    chosen = {part.strip() for part in done.split(",")}
    current = current.strip().lower()
    offered = [slug for slug in dict.fromkeys(slugs) if _plain_slug(slug)]
    return [prefix + slug for slug in offered if slug.lower().startswith(current) and slug not in chosen][
        :MAX_COMPLETIONS
    ]


def _plain_slug(slug: str) -> bool:
    return 0 < len(slug) <= SLUG_LIMIT and slug.isprintable() and "," not in slug


Context = ServerRequestContext[Any, Any]


class Prompts:
    """The prompts' handlers. `caller` resolves the request's caller (the server's key policy) and raises
    a RespanError when there is no key this caller may use: then nothing is looked up on its behalf."""

    def __init__(
        self,
        caller: Callable[[Context], Caller],
        client: Callable[[], RespanClient],
        evaluators: Callable[[], EvaluatorCache],
    ) -> None:
        self.caller, self.client, self.evaluators = caller, client, evaluators

    async def list_prompts(
        self, _ctx: Context, _params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        return types.ListPromptsResult(prompts=list(PROMPTS.values()))

    async def get_prompt(self, ctx: Context, params: types.GetPromptRequestParams) -> types.GetPromptResult:
        """The prompt, with what Respan says each named evaluator means, looked up with the caller's key."""
        prompt = PROMPTS.get(params.name)
        if prompt is None:
            raise MCPError(
                types.INVALID_PARAMS,
                f"Unknown prompt '{one_line(params.name, 100)}'; the prompts are self_grade and grade_logs.",
            )
        arguments = params.arguments or {}
        evaluators, rubric = arguments.get("evaluators"), arguments.get("rubric")
        if prompt is GRADE_LOGS and not named_slugs(evaluators):
            raise MCPError(
                types.INVALID_PARAMS,
                "grade_logs needs evaluators: the comma-separated slugs of the evaluators to score each log on "
                "(list_evaluators shows them).",
            )
        found, unknown, unreachable = await self._look_up(ctx, to_look_up(named_slugs(evaluators)))
        if prompt is GRADE_LOGS:
            text = grade_logs_text(evaluators, arguments.get("logs"), rubric, found, unknown, unreachable)
        else:
            text = self_grade_text(
                arguments.get("log_id"), evaluators, rubric, found, unknown, unreachable, trace_id(ctx.meta)
            )
        return types.GetPromptResult(
            description=prompt.description,
            messages=[types.PromptMessage(role="user", content=types.TextContent(type="text", text=text))],
        )

    async def _look_up(self, ctx: Context, slugs: list[str]) -> tuple[list[Evaluator], list[str], bool]:
        """The evaluators found, the slugs no evaluator has, and whether Respan could not be asked for some."""
        if not slugs:
            return [], [], False
        try:
            caller = self.caller(ctx)
        except RespanError:  # no lookup on behalf of a caller who may not use the server's key
            return [], [], True
        answers = await self.evaluators().many([(None, slug) for slug in slugs], caller)
        found = [answer for answer in answers.values() if isinstance(answer, Evaluator)]
        unknown = [slug for (_, slug), answer in answers.items() if answer is None and slug]
        return found, unknown, any(isinstance(answer, RespanError) for answer in answers.values())

    async def complete(self, ctx: Context, params: types.CompleteRequestParams) -> types.CompleteResult:
        """Evaluator slugs for either prompt's `evaluators`, found with the caller's key or a key we may lend."""
        ref, argument = params.ref, params.argument
        nothing = types.CompleteResult(completion=types.Completion(values=[]))
        if not (isinstance(ref, types.PromptReference) and ref.name in PROMPTS and argument.name == "evaluators"):
            return nothing
        current = argument.value.rpartition(",")[2].strip()
        if len(argument.value) > COMPLETION_LIMIT or len(current) > SLUG_LIMIT:
            return nothing  # no slug starts so: nothing worth asking Respan
        try:
            caller = self.caller(ctx)
            data = await self.client().send(caller, routes.search_evaluators(current or None, 1, MAX_COMPLETIONS))
        except RespanError:  # no key this caller may use, or Respan failed: no completions, no error
            return nothing
        slugs = [slug for item in routes.results(data) if isinstance(slug := item.get("evaluator_slug"), str)]
        return types.CompleteResult(completion=types.Completion(values=complete_slugs(argument.value, slugs)))
