"""Score models: the one source of truth for validation, tool schemas and docs.

The value-type table below is the only place that says which value field an
evaluator's `score_value_type` takes; descriptions, validation and error
messages are all derived from it.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_serializer
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import core_schema

ScoreValueType = Literal[
    "numerical", "percentage", "boolean", "single_select", "multi_select", "categorical", "text", "comment", "json"
]
ValueField = Literal["numerical_value", "boolean_value", "categorical_value", "string_value", "json_value"]

VALUE_FIELD_FOR_TYPE: dict[str, ValueField] = {
    "numerical": "numerical_value",
    "percentage": "numerical_value",
    "boolean": "boolean_value",
    "single_select": "categorical_value",
    "multi_select": "categorical_value",
    "categorical": "categorical_value",
    "text": "string_value",
    "comment": "string_value",
    "json": "json_value",
}
VALUE_FIELDS: tuple[ValueField, ...] = get_args(ValueField)
PERCENTAGE_RANGE = (0.0, 100.0)


def _types_taking(field: str) -> str:
    return "/".join(t for t, f in VALUE_FIELD_FOR_TYPE.items() if f == field)


# "numerical/percentage -> numerical_value, boolean -> boolean_value, ..." for descriptions.
PAIRING_TABLE_TEXT = ", ".join(f"{_types_taking(field)} -> {field}" for field in VALUE_FIELDS)


class ScoreValueError(ValueError):
    """A score that cannot be sent as given; the message says what to send instead."""


class FlatJsonSchema(GenerateJsonSchema):
    """Publish schemas every MCP host accepts.

    Several hosts (Gemini-backed clients, Cursor, older VS Code) reject `anyOf`
    with null, `$ref`/`$defs` and `default: null`. Optional fields are published
    as their plain type and left out of `required`; nested models are inlined.
    Validation still happens in pydantic against the real (nullable) types.
    """

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        json_schema = super().default_schema(schema)
        if json_schema.get("default", ...) is None:
            del json_schema["default"]
        return json_schema

    def generate(self, schema: core_schema.CoreSchema, mode: JsonSchemaMode = "validation") -> JsonSchemaValue:
        json_schema = super().generate(schema, mode=mode)
        definitions = json_schema.pop("$defs", {})
        return _inline_refs(json_schema, definitions)


def _inline_refs(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            target = definitions[ref.removeprefix("#/$defs/")]
            merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            return _inline_refs(merged, definitions)
        return {key: _inline_refs(value, definitions) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline_refs(item, definitions) for item in node]
    return node


def flat_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The published JSON schema of a model (see `FlatJsonSchema`)."""
    return model.model_json_schema(schema_generator=FlatJsonSchema)


class ScoreValues(BaseModel):
    """The five value fields, plus the optional type the caller says the evaluator has."""

    model_config = ConfigDict(extra="forbid")

    score_value_type: ScoreValueType | None = Field(
        None,
        description=(
            "The evaluator's score_value_type, if you know it; the value field is then checked against it "
            f"before anything is sent ({PAIRING_TABLE_TEXT})."
        ),
    )
    numerical_value: float | None = Field(
        None,
        allow_inf_nan=False,
        description="Numeric score, for numerical and percentage (0 to 100) evaluators.",
    )
    boolean_value: bool | None = Field(None, description="True/false score, for boolean evaluators.")
    categorical_value: list[str] | None = Field(
        None,
        description=(
            "Chosen option(s), for single_select (exactly one), multi_select and legacy categorical evaluators."
        ),
    )
    string_value: str | None = Field(None, description="Free-text score, for text and legacy comment evaluators.")
    json_value: str | dict[str, Any] | list[Any] | None = Field(
        None,
        description="JSON score as JSON text (an object or array is also accepted and encoded), for json evaluators.",
        json_schema_extra=lambda schema: _replace(schema, {"type": "string"}),
    )

    @field_validator("categorical_value", mode="before")
    @classmethod
    def _categorical_from_json_text(cls, value: Any) -> Any:
        # Some clients send arrays as JSON text: '["a"]'. A plain word is one choice.
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except ValueError:
                return [value]
            return parsed if isinstance(parsed, list) else [value]
        return value

    def value_field(self) -> ValueField:
        """Check the value and its pairing with `score_value_type`; return the field that carries it.

        Raises ScoreValueError with a message that names what to send instead.
        """
        given = [name for name in VALUE_FIELDS if getattr(self, name) is not None]
        expected = VALUE_FIELD_FOR_TYPE.get(self.score_value_type) if self.score_value_type else None
        if not given:
            hint = f"{expected} for score_value_type '{self.score_value_type}'" if expected else PAIRING_TABLE_TEXT
            raise ScoreValueError(f"no score value given: send exactly one value field ({hint})")
        if len(given) > 1:
            hint = f"; score_value_type '{self.score_value_type}' takes {expected}" if expected else ""
            raise ScoreValueError(f"send exactly one value field, got {' and '.join(given)}{hint}")
        field = given[0]
        if expected and field != expected:
            raise ScoreValueError(f"score_value_type '{self.score_value_type}' takes {expected}, not {field}")
        check_value(field, getattr(self, field), self.score_value_type)
        return field

    def values_body(self) -> dict[str, Any]:
        """The value field as the API wants it (json_value always JSON text)."""
        field = self.value_field()
        value = getattr(self, field)
        if field == "json_value" and not isinstance(value, str):
            value = json.dumps(value)
        return {field: value}


def check_value(field: str, value: Any, score_value_type: str | None) -> None:
    """Rules on the value itself, beyond its JSON type."""
    if field == "numerical_value" and not math.isfinite(value):
        raise ScoreValueError("numerical_value must be a finite number")
    if field == "numerical_value" and score_value_type == "percentage":
        low, high = PERCENTAGE_RANGE
        if not low <= value <= high:
            raise ScoreValueError(f"score_value_type 'percentage' takes numerical_value from 0 to 100, got {value:g}")
    if field == "categorical_value":
        if not value:
            raise ScoreValueError("categorical_value must list at least one choice, e.g. [\"good\"]")
        if score_value_type == "single_select" and len(value) != 1:
            raise ScoreValueError(
                f"score_value_type 'single_select' takes exactly one choice in categorical_value, got {len(value)}"
            )
    if field == "json_value" and isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            raise ScoreValueError(
                'json_value must be valid JSON text, e.g. "{\\"verdict\\": \\"pass\\"}"; '
                "for plain text use string_value"
            ) from None


def describe_invalid(exc: ValidationError, model: type[BaseModel]) -> str:
    """A pydantic error in plain words, one clause per field, without echoing the values back."""
    problems: list[str] = []
    for error in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in error["loc"]) or "arguments"
        if error["type"] == "extra_forbidden":
            problems.append(f"{field} is not an argument (the arguments are: {', '.join(model.model_fields)})")
        elif error["type"] == "missing":
            problems.append(f"{field} is required")
        else:
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{field}: {message[:1].lower()}{message[1:]}")
    return "invalid arguments: " + "; ".join(problems)


def _replace(schema: dict[str, Any], replacement: dict[str, Any]) -> None:
    description = schema.get("description")
    schema.clear()
    schema.update(replacement)
    if description:
        schema["description"] = description


def _evaluator_checked(evaluator_id: str | None, evaluator_slug: str | None) -> None:
    if bool(evaluator_id) == bool(evaluator_slug):
        got = "both" if evaluator_id else "neither"
        raise ScoreValueError(
            f"give exactly one of evaluator_id or evaluator_slug (got {got}): evaluator_id for a platform "
            "evaluator, evaluator_slug for a custom score or when you know only the slug"
        )


class LogScoreWrite(ScoreValues):
    """Arguments of `upsert_log_score`: `POST /api/logs/{log_id}/scores/`."""

    log_id: str = Field(min_length=1, description="ID of the log (span) to score, as shown in Respan.")
    evaluator_id: str | None = Field(
        None, min_length=1, description="ID of the platform evaluator. Give this or evaluator_slug, not both."
    )
    evaluator_slug: str | None = Field(
        None,
        min_length=1,
        description="Evaluator slug; a slug no platform evaluator has records a custom score. Give this or evaluator_id.",
    )
    timestamp: datetime | None = Field(
        None, description="The log's timestamp (ISO 8601); saves the API a log lookup when given."
    )
    environment: str | None = Field(None, description="Environment to record the score under, e.g. 'production'.")
    prompt_id: str | None = Field(None, description="ID of the prompt the log belongs to, if any.")
    prompt_version_number: int | None = Field(None, description="Version number of that prompt, if any.")
    dataset_id: str | None = Field(None, description="ID of the dataset the log belongs to, if any.")
    automation_id: str | None = Field(None, description="ID of the automation that produced the score, if any.")

    def request_body(self) -> dict[str, Any]:
        """The JSON body for the API, checked; raises ScoreValueError when it cannot be sent."""
        _evaluator_checked(self.evaluator_id, self.evaluator_slug)
        body = self.model_dump(
            mode="json", exclude_none=True, exclude={"log_id", "score_value_type", *VALUE_FIELDS}
        )
        return body | self.values_body()


class ScoreUpdate(ScoreValues):
    """Arguments of `update_score`: `PATCH /api/scores/{score_id}/` (value fields only)."""

    score_id: str = Field(min_length=1, description="ID of the score to change (the id a score write returned).")

    def request_body(self) -> dict[str, Any]:
        return self.values_body()


class OutputModel(BaseModel):
    """Base of every tool result: null fields are left out of the output.

    Published output schemas are flat (a field is `number`, not `number or null`),
    and clients validate results against them, so a missing value must be absent,
    never null.
    """

    @model_serializer(mode="wrap")
    def _drop_nulls(self, handler: core_schema.SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {key: value for key, value in handler(self).items() if value is not None}


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
