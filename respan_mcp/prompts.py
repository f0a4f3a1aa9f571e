"""The `self_grade` prompt: an agent grading its own run, honestly, with the tools this server has.

`SelfGrade` is the prompt as the server serves it: its listing, `prompts/get` (the named
evaluators looked up with the caller's key, through the evaluator cache) and completions of
evaluator slugs. `self_grade_text` builds the text from what was found, so the agent scores
against what each evaluator means (description, rubric, definition, passing condition) rather
than its own reading of a slug; it fetches nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mcp import types
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError

from respan_mcp import client as routes
from respan_mcp.client import Caller, RespanClient
from respan_mcp.errors import RespanError
from respan_mcp.evaluator import Evaluator
from respan_mcp.evaluator_cache import EvaluatorCache
from respan_mcp.results import one_line

SELF_GRADE = types.Prompt(
    name="self_grade",
    title="Grade your own run",
    description="Grade your own run in Respan: learn each evaluator, judge honestly, write the scores, report them.",
    arguments=[
        types.PromptArgument(name="log_id", description="ID of the Respan log (span) of the run to grade.", required=True),
        types.PromptArgument(name="evaluators", description="Comma-separated evaluator slugs to score on.", required=False),
        types.PromptArgument(name="rubric", description="What good looks like for this run, in your words.", required=False),
    ],
)

# How much of each evaluator text goes into the prompt: enough to grade by, short enough to read.
DESCRIPTION_LIMIT = 300
RUBRIC_LIMIT = 600
DEFINITION_LIMIT = 400
UNREACHABLE = (
    "Respan could not be reached just now, so the evaluators' descriptions and rubrics could not be fetched: "
    "call list_evaluators for each before you score."
)
_NO_SUCH = "- no evaluator has slug '{slug}': check the slug with list_evaluators."
UNREACHABLE_FOR_SOME = "Respan could not be reached for the rest, so their descriptions and rubrics are missing."


def named_slugs(evaluators: str | None) -> list[str]:
    """The slugs in self_grade's comma-separated `evaluators`, in the order given, each once."""
    return list(dict.fromkeys(slug.strip() for slug in (evaluators or "").split(",") if slug.strip()))


def self_grade_text(
    log_id: str,
    evaluators: str | None,
    rubric: str | None,
    found: Sequence[Evaluator] = (),
    unknown: Sequence[str] = (),
    unreachable: bool = False,
) -> str:
    """The prompt's text.

    `found`: the named evaluators Respan described; `unknown`: named slugs no evaluator has;
    `unreachable`: Respan could not be asked, so what the evaluators mean is missing.
    """
    slugs = named_slugs(evaluators)
    rubric = rubric.strip().rstrip(".") if rubric else None
    if found or unknown:
        first = ["1. Score it on these evaluators, as Respan describes them:", *_evaluator_lines(slugs, found, unknown)]
        first += [UNREACHABLE_FOR_SOME] if unreachable else []
        measure = "what the evaluator measures, as described above"
        measure += f", and this rubric for the run: {rubric}" if rubric else ""
    else:
        which = (
            "these evaluators: " + ", ".join(slugs) + " (call get_evaluator with each as evaluator_slug: it gives "
            "the rubric and passing condition too)"
            if slugs
            else "the evaluators that fit this run (call list_evaluators to see them)"
        )
        first = [
            f"1. Score it on {which}. list_evaluators tells each evaluator's score_value_type, the value "
            "field it takes, and its range or choices." + (f" {UNREACHABLE}" if unreachable else "")
        ]
        measure = "what the evaluator measures" + (f", using this rubric: {rubric}" if rubric else "")
    judge = (
        f"2. For each evaluator, judge the run's actual output against {measure}. Base each value on evidence "
        "you can point to; when unsure, choose the lower value."
    )
    if any(e.condition_text() for e in found):
        judge += " Where an evaluator passes at a threshold, judge first and let the verdict follow: never move a "
        judge += "value across it."
    steps = [
        f"You are grading your own run, logged in Respan as log {log_id}. Grade it as a strict reviewer "
        "would: a flattering score is worse than none, because people decide on it.",
        *first,
        judge,
        f'3. Write the scores with log_id "{log_id}": upsert_log_score for one, upsert_log_scores for '
        "several (one item per evaluator). Use only the value field each evaluator takes.",
        "4. If upsert_log_scores answers with deferred items, call it again with just those items after "
        "retry_after_seconds. Fix invalid items as their error says and send them again.",
        "5. Finish with a short report: each evaluator, the value written and one sentence of evidence, "
        "and anything you could not score and why.",
    ]
    return "\n".join(steps)


def _evaluator_lines(slugs: list[str], found: Sequence[Evaluator], unknown: Sequence[str]) -> list[str]:
    """One entry per named slug, in the order given; found evaluators no slug named come last."""
    by_slug = {e.slug: e for e in found if e.slug}
    lines: list[str] = []
    for slug in slugs:
        if slug in by_slug:
            lines += _about(by_slug.pop(slug))
        elif slug in unknown:
            lines.append(_NO_SUCH.format(slug=slug))
        else:
            lines.append(f"- {slug}: not looked up; call get_evaluator with it as evaluator_slug.")
    listed = set(slugs)
    lines += [line for e in found if e.slug not in listed for line in _about(e)]
    lines += [_NO_SUCH.format(slug=slug) for slug in unknown if slug not in listed]
    return lines


def _about(evaluator: Evaluator) -> list[str]:
    """What an agent needs to score one evaluator: what to send, when it passes, and what it means."""
    if evaluator.score_value_type is None:
        send = "Respan does not say its type; send the one value field that fits it"
    elif evaluator.value_field is None:
        send = f"its type '{evaluator.score_value_type}' is new to this server; send the value field that fits it"
    else:
        send = evaluator.what_to_send()
        named = evaluator.named_choices or ()
        if any(choice.name.lower() != choice.value.lower() for choice in named):  # names that add something
            send += " (" + ", ".join(f"'{c.value}' means {c.name}" for c in named) + ")"
    head = f"- {evaluator.label}: {evaluator.score_value_type or 'type unknown'}; {send}."
    condition = evaluator.condition_text()
    if condition:
        head += f" It passes when {condition}."
    lines = [head]
    for title, text, limit in (
        ("Description", evaluator.description, DESCRIPTION_LIMIT),
        ("Rubric", evaluator.rubric, RUBRIC_LIMIT),
        ("What its grader looks at", evaluator.definition, DEFINITION_LIMIT),
    ):
        if text:
            lines.append(f"  {title}: {one_line(text, limit)}")
    return lines


def complete_slugs(partial: str, slugs: list[str]) -> list[str]:
    """Completions for a comma-separated list: the earlier entries kept, the last one completed."""
    done, _, current = partial.rpartition(",")
    prefix = f"{done}, " if done else ""
    chosen = {part.strip() for part in done.split(",")}
    current = current.strip().lower()
    return [prefix + slug for slug in slugs if slug.lower().startswith(current) and slug not in chosen][:100]


Context = ServerRequestContext[Any, Any]


class SelfGrade:
    """The prompt's handlers. `caller` resolves the request's caller (the server's key policy) and raises
    a RespanError when there is no key this caller may use: then nothing is looked up on its behalf."""

    def __init__(
        self,
        caller: Callable[[Context], Caller],
        client: Callable[[], RespanClient],
        evaluators: Callable[[], EvaluatorCache],
    ) -> None:
        self.caller, self.client, self.evaluators = caller, client, evaluators

    async def list_prompts(self, _ctx: Context, _params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
        return types.ListPromptsResult(prompts=[SELF_GRADE])

    async def get_prompt(self, ctx: Context, params: types.GetPromptRequestParams) -> types.GetPromptResult:
        """self_grade, with what Respan says each named evaluator means, looked up with the caller's key."""
        arguments = params.arguments or {}
        if params.name != SELF_GRADE.name:
            raise MCPError(types.INVALID_PARAMS, f"Unknown prompt '{params.name}'; the prompt is self_grade.")
        if not arguments.get("log_id"):
            raise MCPError(types.INVALID_PARAMS, "self_grade needs log_id: the ID of the Respan log of the run to grade.")
        evaluators, rubric = arguments.get("evaluators"), arguments.get("rubric")
        found: list[Evaluator] = []
        unknown: list[str] = []
        unreachable = False
        if slugs := named_slugs(evaluators):
            try:
                caller = self.caller(ctx)
            except RespanError:  # no lookup on behalf of a caller who may not use the server's key
                unreachable = True
            else:
                answers = await self.evaluators().many([(None, slug) for slug in slugs], caller)
                found = [answer for answer in answers.values() if isinstance(answer, Evaluator)]
                unknown = [slug for (_, slug), answer in answers.items() if answer is None and slug]
                unreachable = any(isinstance(answer, RespanError) for answer in answers.values())
        text = self_grade_text(arguments["log_id"], evaluators, rubric, found, unknown, unreachable)
        return types.GetPromptResult(
            description=SELF_GRADE.description,
            messages=[types.PromptMessage(role="user", content=types.TextContent(type="text", text=text))],
        )

    async def complete(self, ctx: Context, params: types.CompleteRequestParams) -> types.CompleteResult:
        """Evaluator slugs for self_grade's `evaluators`, found with the caller's key or a key we may lend."""
        ref, argument = params.ref, params.argument
        nothing = types.CompleteResult(completion=types.Completion(values=[]))
        if not (isinstance(ref, types.PromptReference) and ref.name == SELF_GRADE.name and argument.name == "evaluators"):
            return nothing
        current = argument.value.rpartition(",")[2].strip()
        try:
            caller = self.caller(ctx)
            data = await self.client().send(caller, routes.search_evaluators(current or None, 1, 100))
        except RespanError:  # no key this caller may use, or Respan failed: no completions, no error
            return nothing
        slugs = [slug for item in routes.results(data) if isinstance(slug := item.get("evaluator_slug"), str) and slug]
        return types.CompleteResult(completion=types.Completion(values=complete_slugs(argument.value, slugs)))
