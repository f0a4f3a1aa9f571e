"""The `self_grade` prompt: an agent grading its own run, honestly, with the tools this server has."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field


def self_grade(
    log_id: Annotated[str, Field(description="ID of the Respan log (span) of the run to grade.")],
    evaluators: Annotated[str | None, Field(description="Comma-separated evaluator slugs to score on.")] = None,
    rubric: Annotated[str | None, Field(description="What good looks like for this run, in your words.")] = None,
) -> str:
    """Grade your own run in Respan: learn each evaluator, judge honestly, write the scores, report them."""
    slugs = [slug.strip() for slug in (evaluators or "").split(",") if slug.strip()]
    which = (
        "these evaluators: " + ", ".join(slugs) + " (call list_evaluators with each as search)"
        if slugs
        else "the evaluators that fit this run (call list_evaluators to see them)"
    )
    steps = [
        f"You are grading your own run, logged in Respan as log {log_id}. Grade it as a strict reviewer "
        "would: a flattering score is worse than none, because people decide on it.",
        f"1. Score it on {which}. list_evaluators tells each evaluator's score_value_type, the value "
        "field it takes, and its range or choices.",
        "2. For each evaluator, judge the run's actual output against what the evaluator measures"
        + (f", using this rubric: {rubric.strip()}" if rubric and rubric.strip() else "")
        + ". Base each value on evidence you can point to; when unsure, choose the lower value.",
        f'3. Write the scores with log_id "{log_id}": upsert_log_score for one, upsert_log_scores for '
        "several (one item per evaluator). Use only the value field each evaluator takes.",
        "4. If upsert_log_scores answers with deferred items, call it again with just those items after "
        "retry_after_seconds. Fix invalid items as their error says and send them again.",
        "5. Finish with a short report: each evaluator, the value written and one sentence of evidence, "
        "and anything you could not score and why.",
    ]
    return "\n".join(steps)


def complete_slugs(partial: str, slugs: list[str]) -> list[str]:
    """Completions for a comma-separated list: the earlier entries kept, the last one completed."""
    done, _, current = partial.rpartition(",")
    prefix = f"{done}, " if done else ""
    chosen = {part.strip() for part in done.split(",")}
    current = current.strip().lower()
    return [prefix + slug for slug in slugs if slug.lower().startswith(current) and slug not in chosen][:100]
