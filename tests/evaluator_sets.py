"""The evaluators several test modules seed into the stand-in, in one place.

A module's `fake` fixture calls one of these (`return add_helpfulness(fake)`), or is one of them
(`fake = pytest.fixture(any_log_and_helpfulness, name="fake")`), so the same evaluator is spelled the
same way everywhere and a test that asserts on its id, range or rubric reads it here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tests.fake_api import FakeRespan

RUBRIC = "1=terrible, 2=poor, 3=ok, 4=good, 5=excellent"
DESCRIPTION = "How useful the answer is to the person who asked."
TONE = [{"name": "Kind and clear", "value": "good"}, {"name": "Curt", "value": "bad"}]


def batch_settings() -> dict[str, Any]:
    """The batch modules' `mcp_settings`: eight writes in flight."""
    return {"max_concurrency": 8}


def add_helpfulness(fake: FakeRespan) -> FakeRespan:
    """`helpfulness` (id `evl_help`): numerical, 1 to 5, no passing condition."""
    fake.add_evaluator(
        id="evl_help",
        slug="helpfulness",
        name="Helpfulness",
        score_value_type="numerical",
        score_config={"min_score": 1, "max_score": 5},
    )
    return fake


def any_log_and_helpfulness(fake: FakeRespan) -> FakeRespan:
    """What the batch modules write to: any log is known, and one numerical evaluator, `helpfulness`."""
    fake.accept_any_log = True
    return add_helpfulness(fake)


def add_graded_evaluators(
    fake: FakeRespan,
    *,
    definition: str,
    description: str = DESCRIPTION,
    quality_id: str = "evl_q",
    also: Iterable[str] = ("safe", "plain", "tone"),
) -> FakeRespan:
    """`quality` (numerical 1 to 5 with `description`, `definition` and RUBRIC, passing at >= 3) and
    those of `also`: `safe` (boolean, passing when true), `plain` (numerical, no condition, no meaning)
    and `tone` (single_select of TONE)."""
    fake.add_evaluator(
        id=quality_id,
        slug="quality",
        name="Quality",
        score_value_type="numerical",
        score_config={"min_score": 1, "max_score": 5},
        description=description,
        llm_config={"model": "gpt-4o", "evaluator_definition": definition, "scoring_rubric": RUBRIC},
        passing_conditions={"primary_score": {"operator": "gte", "value": 3}},
    )
    seeds: dict[str, dict[str, Any]] = {
        "safe": {
            "id": "evl_safe",
            "name": "Safe",
            "score_value_type": "boolean",
            "passing_conditions": {"primary_score": {"operator": "eq", "value": True}},
        },
        "plain": {"id": "evl_plain", "name": "Plain", "score_value_type": "numerical"},
        "tone": {"id": "evl_tone", "name": "Tone", "score_value_type": "single_select", "score_config": {"choices": TONE}},
    }
    for slug in also:
        fake.add_evaluator(slug=slug, **seeds[slug])
    return fake
