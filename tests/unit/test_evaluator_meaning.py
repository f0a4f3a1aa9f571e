"""What an evaluator means (description, rubric, definition, passing condition), the self_grade text
built from it, and the loopback API's `is_passed` verdict."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from respan_mcp.errors import ScoreValueError
from respan_mcp.evaluator import Choice, Evaluator, PassingCondition
from respan_mcp.prompt_text import self_grade_text
from respan_mcp.values import ScoreValues
from tests.conftest import API_KEY, LOG_ID
from tests.evaluator_sets import RUBRIC, add_graded_evaluators
from tests.fake_api import FakeRespan, RunningFakeRespan

DEFINITION = "Evaluate the quality of this response.\nInput: {{input}}\nOutput: {{output}}"
MODERN: dict[str, Any] = {
    "id": "evl_q",
    "evaluator_slug": "quality",
    "name": "Response Quality",
    "type": "llm",
    "score_value_type": "numerical",
    "description": "How useful the answer is to the user.",
    "score_config": {"min_score": 1, "max_score": 5},
    "passing_conditions": {"primary_score": {"operator": "gte", "value": 3}},
    "llm_config": {"model": "gpt-4o", "evaluator_definition": DEFINITION, "scoring_rubric": RUBRIC},
}


def evaluator(**fields: Any) -> Evaluator:
    return Evaluator.from_api({"id": "evl_x", "evaluator_slug": "x", "score_value_type": "numerical"} | fields)


def condition(operator: str, value: Any, kind: str = "numerical") -> Evaluator:
    return evaluator(
        score_value_type=kind, passing_conditions={"primary_score": {"operator": operator, "value": value}}
    )


# -- parsing -------------------------------------------------------------------------------


def test_modern_evaluator_carries_what_it_means() -> None:
    parsed = Evaluator.from_api(MODERN)
    assert parsed.description == "How useful the answer is to the user."
    assert parsed.rubric == RUBRIC and parsed.definition == DEFINITION
    assert parsed.passing_condition == PassingCondition(operator="gte", value=3.0)
    assert (parsed.min_score, parsed.max_score, parsed.value_field, parsed.label) == (
        1,
        5,
        "numerical_value",
        "quality",
    )


def test_legacy_configurations_give_range_rubric_and_definition() -> None:
    parsed = evaluator(
        configurations={
            "min_score": 0,
            "max_score": 3,
            "scoring_rubric": "0=off, 3=on",
            "evaluator_definition": "Rate {{output}}",
        }
    )
    assert (parsed.min_score, parsed.max_score) == (0, 3)
    assert parsed.rubric == "0=off, 3=on" and parsed.definition == "Rate {{output}}"
    assert parsed.passing_condition is None


def test_llm_config_wins_over_legacy_configurations() -> None:
    parsed = evaluator(llm_config={"scoring_rubric": "new"}, configurations={"scoring_rubric": "old"})
    assert parsed.rubric == "new"


@pytest.mark.parametrize("missing", [{}, {"description": None, "llm_config": None, "passing_conditions": None}])
def test_absent_or_null_meaning_is_none(missing: dict[str, Any]) -> None:
    parsed = evaluator(**missing)
    assert (parsed.description, parsed.rubric, parsed.definition, parsed.passing_condition) == (None, None, None, None)
    assert parsed.condition_text() is None and parsed.passes(5) is None


@pytest.mark.parametrize(
    "odd",
    [
        {"description": "   ", "llm_config": {"scoring_rubric": ""}},
        {"description": 12, "llm_config": {"scoring_rubric": ["1=bad"], "evaluator_definition": {"text": "x"}}},
        {"llm_config": "gpt-4o", "configurations": ["min_score", 1]},
    ],
)
def test_odd_meaning_shapes_are_dropped(odd: dict[str, Any]) -> None:
    parsed = evaluator(**odd)
    assert (parsed.description, parsed.rubric, parsed.definition) == (None, None, None)


@pytest.mark.parametrize(
    "passing_conditions",
    [
        [{"operator": "gte", "value": 3}],  # a list
        "gte 3",
        {"primary_score": None},
        {"primary_score": [{"operator": "gte", "value": 3}]},
        {"primary_score": {"operator": "between", "value": 3}},  # unknown operator
        {"primary_score": {"operator": "GTE", "value": 3}},
        {"primary_score": {"value": 3}},
        {"primary_score": {"operator": "gte"}},
        {"primary_score": {"operator": "gte", "value": "three"}},
        {"primary_score": {"operator": "gte", "value": [1, 2]}},
        {"primary_score": {"operator": "gte", "value": float("nan")}},
        {"primary_score": {"operator": "gte", "value": {"min": 3}}},
        {"other_score": {"operator": "gte", "value": 3}},
    ],
)
def test_odd_passing_conditions_are_none(passing_conditions: Any) -> None:
    assert evaluator(passing_conditions=passing_conditions).passing_condition is None


@pytest.mark.parametrize(
    "raw, value",
    [(3, 3.0), (2.5, 2.5), ("3", 3.0), (" 4.5 ", 4.5), ([3], 3.0), (True, True), ("true", True), ("False", False)],
)
def test_condition_values_are_read_leniently(raw: Any, value: float | bool) -> None:
    parsed = condition("gte", raw).passing_condition
    assert parsed is not None and parsed.value == value and type(parsed.value) is type(value)


def test_choices_keep_values_for_checks_and_names_for_display() -> None:
    parsed = evaluator(
        score_value_type="single_select",
        score_config={"choices": [{"name": "Polite", "value": "polite"}, {"name": "Rude", "value": "rude"}]},
    )
    assert parsed.choices == ("polite", "rude")
    assert parsed.named_choices == (Choice("Polite", "polite"), Choice("Rude", "rude"))
    assert [tuple(choice) for choice in parsed.named_choices] == [("Polite", "polite"), ("Rude", "rude")]


def test_legacy_and_bare_choices_get_names() -> None:
    legacy = evaluator(
        score_value_type="categorical", categorical_choices=[{"name": "Grade A", "value": 1}, {"name": "B"}, None]
    )
    assert legacy.named_choices == (Choice("Grade A", "1"), Choice("B", "B"))
    assert legacy.choices == ("1", "B")
    bare = evaluator(score_value_type="multi_select", configurations={"choices": ["math", "code"]})
    assert bare.named_choices == (Choice("math", "math"), Choice("code", "code"))
    assert evaluator(score_value_type="single_select", score_config={"choices": []}).choices is None


def test_check_describe_and_what_to_send_unchanged() -> None:
    parsed = Evaluator.from_api(MODERN)
    assert parsed.describe() == "evaluator 'quality' is numerical (1 to 5)"
    assert parsed.what_to_send() == "send numerical_value between 1 and 5"
    parsed.check(*ScoreValues(numerical_value=2).checked_value(), None)  # below the passing condition is still a valid score
    with pytest.raises(ScoreValueError, match=r"send numerical_value between 1 and 5 \(got 6\)"):
        parsed.check(*ScoreValues(numerical_value=6).checked_value(), None)
    tone = evaluator(
        score_value_type="single_select", score_config={"choices": [{"name": "Polite", "value": "polite"}]}
    )
    with pytest.raises(ScoreValueError, match=r"exactly one of 'polite' \(got 'Polite'\)"):
        tone.check(*ScoreValues(categorical_value=["Polite"]).checked_value(), None)  # the name is for people; the value is sent


# -- condition_text and passes -------------------------------------------------------------


@pytest.mark.parametrize(
    "operator, text, verdicts",
    [
        ("gte", "numerical_value >= 3", {2.99: False, 3: True, 4: True}),
        ("gt", "numerical_value > 3", {3: False, 3.01: True}),
        ("lte", "numerical_value <= 3", {3: True, 3.01: False}),
        ("lt", "numerical_value < 3", {2.99: True, 3: False}),
        ("eq", "numerical_value == 3", {3: True, 3.0001: False, 2: False, 4: False}),
    ],
)
def test_each_operator_on_numbers(operator: str, text: str, verdicts: dict[float, bool]) -> None:
    parsed = condition(operator, 3)
    assert parsed.condition_text() == text
    assert {value: parsed.passes(value) for value in verdicts} == verdicts


def test_fractional_threshold_reads_as_given() -> None:
    assert condition("gte", 0.75).condition_text() == "numerical_value >= 0.75"
    assert condition("gte", 80, "percentage").condition_text() == "numerical_value >= 80"


@pytest.mark.parametrize("value", [True, "5", None, float("inf"), float("nan"), ["5"]])
def test_passes_is_none_for_a_value_of_the_wrong_kind(value: Any) -> None:
    assert condition("gte", 3).passes(value) is None


@pytest.mark.parametrize(
    "operator, value, text, passes_true, passes_false",
    [
        ("eq", True, "boolean_value == true", True, False),
        ("eq", False, "boolean_value == false", False, True),
        ("eq", 1, "boolean_value == true", True, False),
        ("gte", 1, "boolean_value == true", True, False),
        ("lt", 1, "boolean_value == false", False, True),
    ],
)
def test_boolean_conditions(operator: str, value: Any, text: str, passes_true: bool, passes_false: bool) -> None:
    parsed = condition(operator, value, "boolean")
    assert parsed.condition_text() == text
    assert (parsed.passes(True), parsed.passes(False), parsed.passes(1)) == (passes_true, passes_false, None)


def test_boolean_condition_every_value_meets_says_nothing() -> None:
    parsed = condition("gte", 0, "boolean")
    assert parsed.condition_text() is None and parsed.passes(False) is True


@pytest.mark.parametrize("kind, value", [("single_select", ["good"]), ("text", "fine"), ("json", "{}"), ("mystery", 3)])
def test_condition_on_other_types_is_not_claimed(kind: str, value: Any) -> None:
    parsed = condition("gte", 3, kind)
    assert parsed.passing_condition is not None
    assert parsed.condition_text() is None and parsed.passes(value) is None


# -- the self_grade text -------------------------------------------------------------------


def test_prompt_tells_what_each_found_evaluator_means() -> None:
    tone = evaluator(
        evaluator_slug="tone",
        score_value_type="single_select",
        score_config={"choices": [{"name": "Kind and clear", "value": "good"}, {"name": "Curt", "value": "bad"}]},
    )
    text = self_grade_text(
        "log_9", "quality, tone", None, found=[Evaluator.from_api(MODERN), tone], unknown=[], unreachable=False
    )
    assert "How useful the answer is to the user." in text and RUBRIC in text
    assert r"Evaluate the quality of this response.\nInput: {{input}}\nOutput: {{output}}" in text  # on one line
    assert "send numerical_value between 1 and 5" in text and "passes when numerical_value >= 3" in text
    assert "'good' means Kind and clear" in text
    assert text.index("- quality") < text.index("- tone")
    assert "could not be reached" not in text and "no evaluator has slug" not in text
    assert '"log_9"' in text and "upsert_log_score" in text


def test_prompt_trims_a_long_definition() -> None:
    long = evaluator(llm_config={"evaluator_definition": "Judge {{output}}. " + "Consider this. " * 200})
    text = self_grade_text("log_1", "x", None, found=[long], unknown=[], unreachable=False)
    line = next(line for line in text.splitlines() if "Judge {{output}}" in line)
    assert len(line) < 500 and line.endswith("(cut; get_evaluator has it whole)")


def test_prompt_names_unknown_slugs() -> None:
    text = self_grade_text(
        "log_1", "quality, qualty", None, found=[Evaluator.from_api(MODERN)], unknown=["qualty"], unreachable=False
    )
    assert "no evaluator has slug 'qualty': check the slug with list_evaluators" in text
    assert RUBRIC in text


def test_prompt_when_only_unknown_slugs() -> None:
    text = self_grade_text("log_1", "nope", "Be brief.", found=[], unknown=["nope"], unreachable=False)
    assert "no evaluator has slug 'nope'" in text and "Be brief" in text


def test_prompt_says_when_respan_could_not_be_reached() -> None:
    before = self_grade_text("log_1", "quality, tone", "Cites its sources.", found=[], unknown=[], unreachable=False)
    text = self_grade_text("log_1", "quality, tone", "Cites its sources.", found=[], unknown=[], unreachable=True)
    assert "could not be reached" not in before
    added = " Respan could not be reached just now, so the evaluators' descriptions and rubrics could not be fetched"
    assert added in text and text.replace(added + ": call list_evaluators for each before you score.", "") == before


def test_prompt_unreachable_for_some_names_the_rest() -> None:
    text = self_grade_text(
        "log_1", "quality, tone", None, found=[Evaluator.from_api(MODERN)], unknown=[], unreachable=True
    )
    assert RUBRIC in text and "- tone: not looked up" in text and "could not be reached for the rest" in text


def test_prompt_without_found_evaluators_is_todays_text() -> None:
    assert self_grade_text("log_1", None, None) == self_grade_text(
        "log_1", None, None, found=[], unknown=[], unreachable=False
    )
    text = self_grade_text("log_1", None, None)
    assert "call list_evaluators to see them" in text and "rubric" not in text


# -- the loopback API's verdict ------------------------------------------------------------


@pytest.fixture
def fake(fake: FakeRespan) -> FakeRespan:
    """Evaluators with a passing condition, without one, and in legacy form."""
    add_graded_evaluators(fake, definition=DEFINITION, description="How useful the answer is.", also=["safe", "plain"])
    fake.add_evaluator(
        id="evl_old",
        slug="legacy",
        name="Legacy",
        score_value_type="categorical",
        categorical_choices=[{"name": "A", "value": "A"}],
        configurations={"scoring_rubric": "A is best"},
    )
    return fake


@pytest.fixture
def http(api: RunningFakeRespan) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=api.url, headers={"Authorization": f"Bearer {API_KEY}"}) as client:
        yield client


def upsert(http: httpx2.Client, **body: Any) -> dict[str, Any]:
    response = http.post(f"/api/logs/{LOG_ID}/scores/", json=body)
    assert response.status_code in (200, 201), response.text
    score: dict[str, Any] = response.json()
    return score


def stored(api: RunningFakeRespan, score_id: str) -> Any:
    return api.fake.scores[score_id]["is_passed"]


@pytest.mark.parametrize(
    "body, verdict",
    [
        ({"evaluator_slug": "quality", "numerical_value": 3}, True),
        ({"evaluator_id": "evl_q", "numerical_value": 2.5}, False),
        ({"evaluator_slug": "safe", "boolean_value": True}, True),
        ({"evaluator_slug": "safe", "boolean_value": False}, False),
        ({"evaluator_slug": "plain", "numerical_value": 5}, None),  # no condition
        ({"evaluator_slug": "my_custom_metric", "numerical_value": 5}, None),  # no evaluator
        ({"evaluator_slug": "quality", "string_value": "great"}, None),  # no primary value
    ],
)
def test_upsert_computes_is_passed(
    api: RunningFakeRespan, http: httpx2.Client, body: dict[str, Any], verdict: Any
) -> None:
    score = upsert(http, **body)
    assert score["is_passed"] is verdict and stored(api, score["id"]) is verdict


def test_upsert_again_and_patch_recompute_is_passed(api: RunningFakeRespan, http: httpx2.Client) -> None:
    score = upsert(http, evaluator_slug="quality", numerical_value=4)
    assert stored(api, score["id"]) is True
    again = upsert(http, evaluator_slug="quality", numerical_value=1)
    assert again["id"] == score["id"] and again["is_passed"] is False and stored(api, score["id"]) is False
    patched = http.patch(f"/api/scores/{score['id']}/", json={"numerical_value": 5})
    assert patched.status_code == 200 and patched.json()["is_passed"] is True and stored(api, score["id"]) is True


def test_patch_of_a_custom_score_keeps_is_passed_null(api: RunningFakeRespan, http: httpx2.Client) -> None:
    score = upsert(http, evaluator_slug="my_custom_metric", numerical_value=5)
    assert http.patch(f"/api/scores/{score['id']}/", json={"numerical_value": 1}).json()["is_passed"] is None


def test_list_and_get_serve_what_an_evaluator_means(http: httpx2.Client) -> None:
    listed = {e["evaluator_slug"]: e for e in http.get("/api/evaluators/", params={"search": ""}).json()["results"]}
    got = http.get("/api/evaluators/evl_q/").json()
    for served in (listed["quality"], got):
        parsed = Evaluator.from_api(served)
        assert parsed.description == "How useful the answer is." and parsed.rubric == RUBRIC
        assert parsed.definition == DEFINITION and parsed.condition_text() == "numerical_value >= 3"
    assert listed["plain"]["passing_conditions"] is None and listed["plain"]["llm_config"] is None
    legacy = Evaluator.from_api(listed["legacy"])
    assert legacy.rubric == "A is best" and legacy.choices == ("A",)
