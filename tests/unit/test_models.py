"""The value-type table, the pairing rules and the published schemas."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from respan_mcp.arguments import LogScoreWrite, ScoreUpdate
from respan_mcp.errors import ScoreValueError
from respan_mcp.results import Score
from respan_mcp.schema import flat_schema
from respan_mcp.values import VALUE_FIELD_FOR_TYPE, VALUE_FIELDS
from respan_mcp.writes import upsert_body

VALUES: dict[str, Any] = {
    "numerical_value": 4.5,
    "boolean_value": True,
    "categorical_value": ["good"],
    "string_value": "clear and correct",
    "json_value": '{"verdict": "pass"}',
}


def write(**fields: Any) -> LogScoreWrite:
    return LogScoreWrite.model_validate({"log_id": "log-1", "evaluator_slug": "quality", **fields})


@pytest.mark.parametrize("score_value_type, field", sorted(VALUE_FIELD_FOR_TYPE.items()))
def test_every_type_takes_its_field(score_value_type: str, field: str) -> None:
    body = upsert_body(write(score_value_type=score_value_type, **{field: VALUES[field]}))[2]
    assert body == {"evaluator_slug": "quality", field: VALUES[field]}


@pytest.mark.parametrize("score_value_type, expected", sorted(VALUE_FIELD_FOR_TYPE.items()))
def test_wrong_pairing_names_the_right_field(score_value_type: str, expected: str) -> None:
    for wrong in (f for f in VALUE_FIELDS if f != expected):
        with pytest.raises(ScoreValueError) as refused:
            upsert_body(write(score_value_type=score_value_type, **{wrong: VALUES[wrong]}))[2]
        assert str(refused.value) == f"score_value_type '{score_value_type}' takes {expected}, not {wrong}"


def test_no_value_lists_the_table() -> None:
    with pytest.raises(ScoreValueError, match="no score value given.*boolean -> boolean_value"):
        upsert_body(write())[2]


def test_no_value_with_type_names_its_field() -> None:
    with pytest.raises(ScoreValueError, match="boolean_value for score_value_type 'boolean'"):
        upsert_body(write(score_value_type="boolean"))[2]


def test_two_value_fields_refused() -> None:
    with pytest.raises(ScoreValueError, match="exactly one value field, got numerical_value and boolean_value"):
        upsert_body(write(numerical_value=1, boolean_value=True))[2]


def test_evaluator_id_and_slug_exactly_one() -> None:
    with pytest.raises(ScoreValueError, match="got both"):
        upsert_body(write(evaluator_id="evl_1", numerical_value=1))[2]
    with pytest.raises(ScoreValueError, match="got neither"):
        upsert_body(LogScoreWrite(log_id="l", numerical_value=1))[2]


def test_categorical_accepts_json_text() -> None:
    assert write(categorical_value='["a", "b"]').categorical_value == ["a", "b"]
    assert write(categorical_value="a").categorical_value == ["a"]


def test_single_select_takes_exactly_one_choice() -> None:
    with pytest.raises(ScoreValueError, match="exactly one choice"):
        upsert_body(write(score_value_type="single_select", categorical_value=["a", "b"]))[2]
    with pytest.raises(ScoreValueError, match="at least one choice"):
        upsert_body(write(categorical_value=[]))[2]


def test_percentage_range() -> None:
    with pytest.raises(ScoreValueError, match="from 0 to 100, got 101"):
        upsert_body(write(score_value_type="percentage", numerical_value=101))[2]


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_refused(number: float) -> None:
    with pytest.raises(ValueError):
        upsert_body(write(numerical_value=number))[2]


def test_json_value_must_be_json_text_or_is_encoded() -> None:
    with pytest.raises(ScoreValueError, match="valid JSON text"):
        upsert_body(write(json_value="not json"))[2]
    assert json.loads(upsert_body(write(json_value={"a": [1]}))[2]["json_value"]) == {"a": [1]}
    assert upsert_body(write(json_value=[1, 2]))[2]["json_value"] == "[1, 2]"


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"numerical_value": True}, "not true or false"),
        ({"numerical_value": False}, "not true or false"),
        ({"boolean_value": 1}, "must be true or false"),
        ({"boolean_value": 0.0}, "must be true or false"),
        ({"boolean_value": "yes"}, "must be true or false"),
    ],
)
def test_a_lax_coercion_is_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        write(**fields)


def test_numbers_and_booleans_sent_as_text_stay_accepted() -> None:
    assert upsert_body(write(numerical_value="3"))[2]["numerical_value"] == 3.0
    assert upsert_body(write(boolean_value="false"))[2]["boolean_value"] is False


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", '{"a": NaN}', "[Infinity]"])
def test_json_value_refuses_what_is_not_json(text: str) -> None:
    with pytest.raises(ScoreValueError, match="NaN and Infinity are not JSON"):
        upsert_body(write(json_value=text))[2]
    with pytest.raises(ScoreValueError, match="NaN and Infinity are not JSON"):
        upsert_body(write(json_value={"a": float("nan")}))[2]


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_json_value_nested_too_deeply_is_refused(depth: int) -> None:
    with pytest.raises(ScoreValueError, match="nested too deeply"):
        upsert_body(write(json_value="[" * depth + "]" * depth))[2]


def test_upsert_body_carries_optional_fields_in_api_names() -> None:
    _, _, body = upsert_body(write(
        numerical_value=3,
        timestamp="2026-11-24T10:00:00Z",
        environment="production",
        prompt_id="p1",
        prompt_version_number=2,
        dataset_id="d1",
        automation_id="a1",
    ))
    assert body == {
        "evaluator_slug": "quality",
        "numerical_value": 3.0,
        "timestamp": "2026-11-24T10:00:00Z",
        "environment": "production",
        "prompt_id": "p1",
        "prompt_version_number": 2,
        "dataset_id": "d1",
        "automation_id": "a1",
    }


def test_update_body_is_only_the_value() -> None:
    update = ScoreUpdate(score_id="s1", score_value_type="text", string_value="better")
    assert update.checked_value() == ("string_value", "better")


def test_score_parses_leniently_and_drops_nulls() -> None:
    score = Score.model_validate({"id": "s1", "numerical_value": None, "brand_new_field": 7, "evaluator": None})
    assert score.model_dump(mode="json") == {"id": "s1", "brand_new_field": 7}


def walk(node: Any, path: str = "$"):
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}[{index}]")


def assert_flat(schema: dict[str, Any], *, every_property_described: bool = True) -> None:
    """The portability rules from DEVELOPERS.md; shared with the server tests."""
    assert schema.get("type") == "object" and isinstance(schema.get("properties"), dict)
    for path, node in walk(schema):
        if not isinstance(node, dict) or path.endswith(".properties"):
            continue
        for banned in ("anyOf", "oneOf", "allOf", "$ref", "$defs"):
            assert banned not in node, f"{banned} at {path}"
        if "type" in node:
            assert isinstance(node["type"], str), f"type array at {path}"
        if "default" in node:
            assert node["default"] is not None, f"default: null at {path}"
        if node.get("type") == "array":
            assert "items" in node, f"array without items at {path}"
        if "enum" in node:
            assert node.get("type") == "string" and all(isinstance(v, str) for v in node["enum"]), path
    if every_property_described:
        for path, node in walk(schema):
            if path.endswith(".properties") and isinstance(node, dict):
                for name, prop in node.items():
                    assert prop.get("description"), f"{path}.{name} has no description"


@pytest.mark.parametrize("model", [LogScoreWrite, ScoreUpdate, Score])
def test_model_schemas_are_flat(model: type) -> None:
    assert_flat(flat_schema(model))


def test_assert_flat_catches_the_sdk_default() -> None:
    with pytest.raises(AssertionError):
        assert_flat(LogScoreWrite.model_json_schema())
