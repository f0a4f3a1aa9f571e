"""Result models: what every tool returns, published as its output schema.

Parsed leniently where the API is the source (it adds fields over time), and
serialised without nulls (published output schemas are flat, so a missing value
must be absent, never null).
"""

from __future__ import annotations

import re
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_serializer
from pydantic_core import core_schema

from respan_mcp import evaluator_fields
from respan_mcp.errors import NotAScoreError
from respan_mcp.evaluator import OPERATORS, Evaluator, Operator
from respan_mcp.evaluator_fields import CHOICES_KEPT, LONG_TEXT, SHORT_TEXT

# A description in a list is cut here (get_evaluator gives it whole): pages of 100 stay readable.
LISTED_DESCRIPTION_LIMIT = 300


def one_line(text: str, limit: int) -> str:
    """One line, at most `limit` characters; a cut is marked so nobody takes it for the whole."""
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _number_or_boolean(schema: dict[str, Any]) -> None:
    """`json_schema_extra` for a threshold that is a number or true/false: published without a type,
    since a flat schema has no type lists and no anyOf."""
    description = schema.get("description")
    schema.clear()
    if description:
        schema["description"] = description


class OutputModel(BaseModel):
    """Base of every tool result: null fields are left out of the output."""

    @model_serializer(mode="wrap")
    def _drop_nulls(self, handler: core_schema.SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {key: value for key, value in handler(self).items() if value is not None}


class ScoreRange(OutputModel):
    """Where numerical_value may lie; either end may be open."""

    min: float | None = Field(None, description="Lowest allowed numerical_value, if bounded below.")
    max: float | None = Field(None, description="Highest allowed numerical_value, if bounded above.")

    @property
    def bounded(self) -> bool:
        return self.min is not None or self.max is not None


class EvaluatorChoice(OutputModel):
    """One choice of a select evaluator."""

    name: str = Field(description="What people see.")
    value: str = Field(description="What categorical_value holds for this choice.")

    @classmethod
    def listed(cls, evaluator: Evaluator) -> list[EvaluatorChoice] | None:
        named = evaluator.named_choices
        return [cls(name=choice.name, value=choice.value) for choice in named] if named else None


class Score(OutputModel):
    """A score as the API returns it.

    Parsed leniently: the API adds fields over time, so unknown ones are kept and
    everything but `id` may be missing.
    """

    model_config = ConfigDict(extra="allow")

    id: str = Field(description="Score ID; pass it to update_score as score_id.")
    created_at: str | None = Field(None, description="When the score was created (ISO 8601).")
    type: str | None = Field(None, description="How the score was produced, e.g. llm, human, code, custom.")
    environment: str | None = Field(None, description="Environment the score belongs to.")
    numerical_value: float | None = Field(None, description="Numeric value, if the score has one.")
    boolean_value: bool | None = Field(None, description="Boolean value, if the score has one.")
    categorical_value: list[str] | None = Field(None, description="Chosen option(s), if the score has them.")
    string_value: str | None = Field(None, description="Text value, if the score has one.")
    json_value: str | None = Field(None, description="JSON value as text, if the score has one.")
    is_passed: bool | None = Field(None, description="Whether the score passes the evaluator's conditions.")
    passing_condition: str | None = Field(
        None, description="When a score for this evaluator passes, e.g. 'numerical_value >= 3', if it says."
    )
    cost: float | None = Field(None, description="Evaluation cost in USD, when known.")
    evaluator_id: str | None = Field(None, description="Evaluator ID.")
    evaluator_slug: str | None = Field(None, description="Evaluator slug.")
    evaluator_name: str | None = Field(None, description="Evaluator name.")
    scorer: str | None = Field(None, description="Who or what produced the score.")
    log_id: str | None = Field(None, description="The scored log's ID.")
    prompt_id: str | None = Field(None, description="Associated prompt ID.")
    prompt_version_number: int | None = Field(None, description="Associated prompt version.")
    dataset_id: str | None = Field(None, description="Associated dataset ID.")
    automation_id: str | None = Field(None, description="Associated automation ID.")
    status: str | None = Field(None, description="Evaluation status.")
    error_message: str | None = Field(None, description="Evaluation error message.")
    inputs: dict[str, Any] | None = Field(None, description="Evaluator inputs stored with the score.")
    evaluator: dict[str, Any] | None = Field(None, description="Evaluator metadata, when it is a platform evaluator.")
    evaluator_range: ScoreRange | None = Field(
        None, description="The evaluator's range for numerical_value, when bounded (to draw the value against)."
    )
    evaluator_choices: list[str] | None = Field(
        None, description="The values categorical_value may hold for this evaluator, when it has choices."
    )

    @field_validator("evaluator_slug", "evaluator_name", mode="before")
    @classmethod
    def _evaluator_words(cls, value: Any) -> str | None:
        """The evaluator's words, read as an evaluator's are: text, bounded, or absent (an odd evaluator's
        name must not make a stored score unreadable). A short printable one, the usual, is taken as it is."""
        if isinstance(value, str) and len(value) <= SHORT_TEXT and value.isprintable():
            return value
        return evaluator_fields.line(value)

    @field_validator("evaluator", mode="before")
    @classmethod
    def _evaluator_summary(cls, value: Any) -> Any:
        """The evaluator's metadata as Respan gives it, each long text in it cut as an evaluator's would be."""
        if not isinstance(value, dict):
            return value
        long = [k for k, v in value.items() if isinstance(v, str) and len(v) > SHORT_TEXT]
        return value | {k: evaluator_fields.cut(value[k], SHORT_TEXT) for k in long} if long else value

    def about(self, evaluator: Evaluator | None) -> Self:
        """This score with what its evaluator says about it: passing condition, range, choices (a copy)."""
        if evaluator is None:
            return self
        limits = ScoreRange(min=evaluator.min_score, max=evaluator.max_score)
        return self.model_copy(
            update={
                "passing_condition": evaluator.condition_text(),
                "evaluator_range": limits if evaluator.value_field == "numerical_value" and limits.bounded else None,
                "evaluator_choices": list(evaluator.choices) if evaluator.choices else None,
            }
        )

    @classmethod
    def from_answer(cls, answer: Any, *, wrote: bool = False) -> Self:
        """The API's answer as a Score; NotAScoreError, worded once here, when it is not one.

        After a write the message says the write went through, so the agent does not send it
        again for the wrong reason (reading back with list_log_scores is safe).
        """
        try:
            if not isinstance(answer, dict):
                raise NotAScoreError(f"answer: a {type(answer).__name__}, not an object")
            if not isinstance(answer.get("id"), str) or not answer["id"]:
                raise NotAScoreError("id: not a score id (a non-empty string)")
            return cls.model_validate(answer)
        except (NotAScoreError, ValidationError) as exc:
            problems = str(exc) if isinstance(exc, NotAScoreError) else "; ".join(
                f"{'.'.join(str(part) for part in error['loc'])}: {error['msg'][:1].lower()}{error['msg'][1:]}"
                for error in exc.errors(include_url=False, include_input=False)[:3]
            )
            happened = (
                "Respan accepted the write (it answered with success), so it happened, but its answer is not a score"
                if wrote
                else "The Respan API's answer is not a score"
            )
            raise NotAScoreError(
                f"{happened} ({problems}); list_log_scores shows what was stored. Check that RESPAN_BASE_URL points "
                "at the Respan API."
            ) from None


class EvaluatorBasics(OutputModel):
    """What every view of an evaluator starts with: who it is, the field a score uses, its range."""

    id: str = Field(description="Evaluator ID; pass it as evaluator_id.")
    evaluator_slug: str | None = Field(None, description="Evaluator slug; pass it as evaluator_slug.")
    name: str | None = Field(None, description="Human-readable name.")
    score_value_type: str | None = Field(None, description="The evaluator's type, e.g. numerical, boolean, single_select.")
    value_field: str | None = Field(None, description="The value field a score for this evaluator must use.")
    min_score: float | None = Field(None, description="Lowest allowed numerical_value, if bounded.")
    max_score: float | None = Field(None, description="Highest allowed numerical_value, if bounded.")
    choices_left_out: int | None = Field(
        None,
        description=f"Choices Respan lists that are not shown (past the first {CHOICES_KEPT}, or too long to send); "
        "Respan still checks a value against them all.",
    )

    @staticmethod
    def basics(evaluator: Evaluator) -> dict[str, Any]:
        return {
            "id": evaluator.id,
            "evaluator_slug": evaluator.slug,
            "name": evaluator.name,
            "score_value_type": evaluator.score_value_type,
            "value_field": evaluator.value_field,
            "min_score": evaluator.min_score,
            "max_score": evaluator.max_score,
            "choices_left_out": evaluator.choices_left_out or None,
        }


class EvaluatorSummary(EvaluatorBasics):
    """One evaluator, as list_evaluators returns it: enough to pick the field and a valid value."""

    choices: list[str] | None = Field(None, description="Allowed categorical_value entries, if any.")
    description: str | None = Field(
        None,
        description=f"What the evaluator measures (cut at {LISTED_DESCRIPTION_LIMIT} characters; get_evaluator has it "
        "whole, with the rubric).",
    )
    passing_condition: str | None = Field(
        None, description="When a score passes, e.g. 'numerical_value >= 3', if the evaluator says."
    )

    @classmethod
    def of(cls, evaluator: Evaluator) -> EvaluatorSummary:
        return cls(
            **cls.basics(evaluator),
            choices=list(evaluator.choices) if evaluator.choices else None,
            description=one_line(evaluator.description, LISTED_DESCRIPTION_LIMIT) if evaluator.description else None,
            passing_condition=evaluator.condition_text(),
        )


class EvaluatorDetail(EvaluatorBasics):
    """One evaluator, whole, as get_evaluator returns it: what a score must be, what it means, when it passes."""

    choices: list[EvaluatorChoice] | None = Field(
        None, description="The choices, if any: categorical_value holds each one's value; name is what people see."
    )
    description: str | None = Field(
        None, description=f"What the evaluator measures, as its authors wrote it (a text past {LONG_TEXT} characters "
        "is cut, and says so)."
    )
    rubric: str | None = Field(None, description="The scoring rubric: what each value means.")
    definition: str | None = Field(
        None, description="The evaluator's definition: the grader's prompt, saying what it looks at."
    )
    passing_condition: str | None = Field(
        None,
        description="When a score passes, in words, e.g. 'numerical_value >= 3' (given for numerical and boolean "
        "evaluators).",
    )
    passing_operator: Operator | None = Field(
        None, description=f"The passing condition's comparison, as Respan stores it: one of {', '.join(OPERATORS)}."
    )
    passing_value: float | bool | None = Field(
        None,
        description="The passing condition's threshold, as Respan stores it: a number, or true/false.",
        json_schema_extra=_number_or_boolean,
    )

    @classmethod
    def of(cls, evaluator: Evaluator) -> EvaluatorDetail:
        condition = evaluator.passing_condition
        return cls(
            **cls.basics(evaluator),
            choices=EvaluatorChoice.listed(evaluator),
            description=evaluator.description,
            rubric=evaluator.rubric,
            definition=evaluator.definition,
            passing_condition=evaluator.condition_text(),
            passing_operator=condition.operator if condition else None,
            passing_value=condition.value if condition else None,
        )


class EvaluatorPage(OutputModel):
    """A page of evaluators."""

    count: int = Field(description="How many evaluators match in all.")
    evaluators: list[EvaluatorSummary] = Field(description="This page's evaluators.")
    skipped: int | None = Field(
        None, description="Evaluators of this page left out: Respan described them without an id or slug to use."
    )
    next_page: int | None = Field(None, description="The page to ask for next, if there are more.")


class ScorePage(OutputModel):
    """A page of a log's scores."""

    count: int = Field(description="How many scores the log has in all.")
    scores: list[Score] = Field(description="This page's scores.")
    next_page: int | None = Field(None, description="The page to ask for next, if there are more.")

    @classmethod
    def from_api(cls, data: Any, page: int) -> ScorePage:
        """A DRF page (`{count, next, previous, results}`), read leniently: a score that cannot be read is left out."""
        page_data = data if isinstance(data, dict) else {}
        results = page_data.get("results")
        scores: list[Score] = []
        for item in results if isinstance(results, list) else []:
            try:
                scores.append(Score.from_answer(item))
            except NotAScoreError:
                continue
        count = page_data.get("count")
        return cls(
            count=count if isinstance(count, int) and not isinstance(count, bool) and count >= 0 else len(scores),
            scores=scores,
            next_page=page + 1 if page_data.get("next") else None,
        )


class PlannedRequest(OutputModel):
    """A request exactly as it would reach Respan."""

    method: str = Field(description="HTTP method, POST or PATCH.")
    path: str = Field(description="Request path, ids percent-encoded as sent, e.g. /api/logs/log_1/scores/.")
    body: dict[str, Any] = Field(description="JSON body, as it would be sent.")


class DryRun(OutputModel):
    """What a write would do, found without writing: the request, and whether the value would pass."""

    request: PlannedRequest = Field(description="The request that would be sent.")
    would_pass: bool | None = Field(
        None, description="Whether the value would pass the evaluator's condition; absent when that is unknown."
    )
    passing_condition: str | None = Field(None, description="The evaluator's passing condition, in words.")


class WriteResult(Score):
    """What upsert_log_score and update_score return: the stored score, or on a dry run what would be sent."""

    id: str | None = Field(  # type: ignore[assignment]
        None, description="Score ID (absent on a dry run); pass it to update_score as score_id."
    )
    dry_run: DryRun | None = Field(
        None, description="Only on a dry run: nothing was written; this is the request that would have been."
    )


BatchStatus = Literal["written", "valid", "invalid", "failed", "deferred", "superseded"]


class ItemResult(OutputModel):
    index: int = Field(description="Position of the item in `scores`, from 0.")
    status: BatchStatus = Field(
        description="written, invalid (never sent), failed, deferred (send it again), or superseded (never sent: a "
        "later item names the same log and evaluator, and its value is kept); on a dry run valid, invalid or "
        "superseded (nothing is sent)."
    )
    score: Score | None = Field(None, description="The stored score, when written.")
    error: str | None = Field(
        None,
        description="What went wrong and what to do, when not written; on a written item without score, why its "
        "answer could not be shown (the write happened).",
    )
    dry_run: DryRun | None = Field(None, description="On a dry run, for a valid item: the request that would be sent.")


class BatchResult(OutputModel):
    results: list[ItemResult] = Field(description="One entry per input item, in input order.")
    written: int = Field(description="Items written.")
    invalid: int = Field(description="Items refused before sending; fix them as their error says.")
    failed: int = Field(description="Items the API refused or that failed for good.")
    deferred: int = Field(description="Items not written by the deadline; send them again.")
    superseded: int | None = Field(
        None, description="Items not sent because a later item names the same log and evaluator (when any)."
    )
    retry_after_seconds: float | None = Field(None, description="When to send the deferred items again.")
    next_step: str | None = Field(None, description="What to do next, when anything is deferred (or on a dry run).")
    valid: int | None = Field(None, description="Only on a dry run: items that passed every check; nothing was written.")

    @property
    def is_error(self) -> bool:
        """The call failed only when nothing could be written (or, on a dry run, nothing would be) and nothing
        is left to send again."""
        if self.valid is not None:
            return self.valid == 0 and self.deferred == 0
        return self.written == 0 and self.deferred == 0
