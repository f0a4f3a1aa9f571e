"""Evaluator results: what list_evaluators and get_evaluator return, published as their output schemas.

Built from an `evaluator.Evaluator` (what Respan stores, read once), as a write's result is
(`results.Score.about`), so all three say the same about an evaluator. Null fields are left out
(`OutputModel`).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from respan_mcp.evaluator import OPERATORS, Evaluator, Operator
from respan_mcp.evaluator_fields import CHOICES_KEPT, LONG_TEXT
from respan_mcp.results import OutputModel, one_line

# A description in a list is cut here (get_evaluator gives it whole): pages of 100 stay readable.
LISTED_DESCRIPTION_LIMIT = 300


class EvaluatorChoice(OutputModel):
    """One choice of a select evaluator."""

    name: str = Field(description="What people see.")
    value: str = Field(description="What categorical_value holds for this choice.")

    @classmethod
    def listed(cls, evaluator: Evaluator) -> list[EvaluatorChoice] | None:
        named = evaluator.named_choices
        return [cls(name=choice.name, value=choice.value) for choice in named] if named else None


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
    # A number always, a boolean threshold as 1 or 0 (as it compares): one JSON type, which a flat schema needs
    # and a client that checks results against it accepts.
    passing_value: float | None = Field(
        None,
        description="The passing condition's threshold, as a number: for a boolean evaluator 1 means true and 0 "
        "means false (passing_condition says it in words).",
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
            passing_value=float(condition.value) if condition else None,
        )


class EvaluatorPage(OutputModel):
    """A page of evaluators."""

    count: int = Field(description="How many evaluators match in all.")
    evaluators: list[EvaluatorSummary] = Field(description="This page's evaluators.")
    skipped: int | None = Field(
        None, description="Evaluators of this page left out: Respan described them without an id or slug to use."
    )
    next_page: int | None = Field(None, description="The page to ask for next, if there are more.")
