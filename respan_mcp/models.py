"""Argument models: the one source of truth for validation, tool schemas and docs.

The value-type table below is the only place that says which value field an
evaluator's `score_value_type` takes; descriptions, validation and error
messages are all derived from it. Every tool's arguments are a model here.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from respan_mcp.config import BATCH_DEADLINE_MAX, BATCH_DEADLINE_MIN
from respan_mcp.schema import as_string, flat_schema

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
        json_schema_extra=as_string,
    )

    @field_validator("numerical_value", mode="before")
    @classmethod
    def _number_not_boolean(cls, value: Any) -> Any:
        # pydantic would store true as 1.0; a boolean here is a wrong field, not a number.
        if isinstance(value, bool):
            raise ValueError("must be a number, not true or false (a boolean evaluator takes boolean_value)")
        return value

    @field_validator("boolean_value", mode="before")
    @classmethod
    def _boolean_not_number(cls, value: Any) -> Any:
        # pydantic would read 1 or "yes" as true; only true/false (or their JSON text) is a boolean score.
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if value is not None and not isinstance(value, bool):
            raise ValueError("must be true or false (a numerical evaluator takes numerical_value)")
        return value

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
            value = json.dumps(value, allow_nan=False)  # checked encodable by check_value
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
    if field == "json_value":
        check_json_value(value)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def check_json_value(value: Any) -> None:
    """Strict JSON only: NaN and Infinity are not JSON, and nesting stays within reason."""
    try:
        if isinstance(value, str):
            json.loads(value, parse_constant=_no_constant)
        else:
            json.dumps(value, allow_nan=False)
    except RecursionError:
        raise ScoreValueError("json_value is nested too deeply; flatten it (a few levels are plenty)") from None
    except ValueError:
        raise ScoreValueError(
            'json_value must be valid JSON text (NaN and Infinity are not JSON), e.g. "{\\"verdict\\": \\"pass\\"}"; '
            "for plain text use string_value"
        ) from None


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
            mode="json", exclude_none=True, exclude={"log_id", "score_value_type", "dry_run", *VALUE_FIELDS}
        )
        return body | self.values_body()


DRY_RUN_TEXT = (
    "true to check everything and see the exact request and whether the value would pass the evaluator's "
    "condition, without writing anything."
)


class LogScoreUpsert(LogScoreWrite):
    """Arguments of `upsert_log_score`: one score, optionally a dry run (a batch item has no dry_run of its own)."""

    dry_run: bool | None = Field(None, description=DRY_RUN_TEXT)


class ScoreUpdate(ScoreValues):
    """Arguments of `update_score`: `PATCH /api/scores/{score_id}/` (value fields only)."""

    score_id: str = Field(min_length=1, description="ID of the score to change (the id a score write returned).")
    dry_run: bool | None = Field(None, description=DRY_RUN_TEXT)

    def request_body(self) -> dict[str, Any]:
        return self.values_body()


DEFAULT_PAGE_SIZE = 20


class PageArgs(BaseModel):
    """Paging shared by the list tools."""

    model_config = ConfigDict(extra="forbid")

    page: int | None = Field(None, ge=1, description="Page number, from 1 (default 1).")
    page_size: int | None = Field(
        None, ge=1, le=100, description=f"Items per page, 1 to 100 (default {DEFAULT_PAGE_SIZE})."
    )


class ListEvaluators(PageArgs):
    """Arguments of `list_evaluators`."""

    search: str | None = Field(None, description="Part of an evaluator's slug or name to filter by.")


class ListLogScores(PageArgs):
    """Arguments of `list_log_scores`."""

    log_id: str = Field(min_length=1, description="ID of the log whose scores to list.")


class GetEvaluator(BaseModel):
    """Arguments of `get_evaluator`."""

    model_config = ConfigDict(extra="forbid")

    evaluator_id: str | None = Field(None, min_length=1, description="ID of the evaluator. Give this or evaluator_slug.")
    evaluator_slug: str | None = Field(
        None, min_length=1, description="Slug of the evaluator, e.g. 'helpfulness'. Give this or evaluator_id."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> GetEvaluator:
        if bool(self.evaluator_id) == bool(self.evaluator_slug):
            got = "both" if self.evaluator_id else "neither"
            raise ValueError(f"give exactly one of evaluator_id or evaluator_slug (got {got})")
        return self


class GetScore(BaseModel):
    """Arguments of `get_score`."""

    model_config = ConfigDict(extra="forbid")

    score_id: str = Field(min_length=1, description="ID of the score to read.")


MAX_BATCH_ITEMS = 500


class BatchWrite(BaseModel):
    """Arguments of `upsert_log_scores`."""

    model_config = ConfigDict(extra="forbid")

    # Items are validated one by one (a bad item fails alone), so they arrive as plain objects;
    # the published schema is upsert_log_score's own, inline.
    scores: list[Annotated[Any, WithJsonSchema(flat_schema(LogScoreWrite))]] = Field(
        min_length=1,
        max_length=MAX_BATCH_ITEMS,
        description=f"1 to {MAX_BATCH_ITEMS} scores, each with the same fields as upsert_log_score.",
    )
    # `ge`, not `gt`: Gemini's schema model refuses `exclusiveMinimum`.
    deadline_seconds: float | None = Field(
        None,
        ge=BATCH_DEADLINE_MIN,
        le=BATCH_DEADLINE_MAX,
        allow_inf_nan=False,
        description=(
            "Seconds the call may take before it returns, with what is not written yet marked deferred "
            f"(default 45, from {BATCH_DEADLINE_MIN:g} to {BATCH_DEADLINE_MAX:g}). Keep it under your client's "
            "tool-call timeout."
        ),
    )
    dry_run: bool | None = Field(
        None,
        description="true to check every item and see, per item, whether it is valid, the exact request and "
        "whether its value would pass, without writing anything.",
    )
