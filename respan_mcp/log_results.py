"""What the log tools return: a page of log summaries, and one log cut to what an agent can read.

A log can hold a whole request and response (tens of MB); what reaches the agent stays small
whatever it holds: each text field is cut at `max_chars`, with a plain note of where, its full
length and how to read on. Text is measured as it is encoded, piece by piece, so a large field
is never copied whole to be cut.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from respan_mcp.results import OutputModel


class LogSummary(OutputModel):
    """One log as find_logs lists it: who and when, never its content."""

    log_id: str = Field(description="The log's unique_id: what get_log and the score tools take as log_id.")
    timestamp: str | None = Field(None, description="When the log was recorded (ISO 8601).")
    span_name: str | None = Field(None, description="The span's name.")
    model: str | None = Field(None, description="The model called, if any.")
    status: str | None = Field(None, description="The log's status, e.g. success or error.")
    trace_unique_id: str | None = Field(None, description="The trace the log belongs to.")
    span_parent_id: str | None = Field(None, description="The parent span, if any (none: a root span).")
    custom_identifier: str | None = Field(None, description="The run's own identifier.")
    thread_identifier: str | None = Field(None, description="The conversation thread.")
    customer_identifier: str | None = Field(None, description="The end user.")
    environment: str | None = Field(None, description="The environment.")
    prompt_id: str | None = Field(None, description="The prompt used, if any.")

    @classmethod
    def of(cls, item: dict[str, Any]) -> LogSummary | None:
        """A list row as a summary; None for a row without a usable id (left out of the page)."""
        log_id = item.get("unique_id")
        if not isinstance(log_id, str) or not log_id:
            return None
        shown = {name: value for name in cls.model_fields if isinstance(value := item.get(name), str) and value}
        return cls(**(shown | {"log_id": log_id}))


class LogPage(OutputModel):
    """A page of logs, newest first, with the time window that was searched."""

    count: int = Field(description="How many logs match in all.")
    logs: list[LogSummary] = Field(description="This page's logs, newest first.")
    next_page: int | None = Field(None, description="The page to ask for next, if there are more.")
    start_time: str = Field(description="The window searched: from (ISO 8601).")
    end_time: str = Field(description="The window searched: to (ISO 8601).")
    trace_unique_id: str | None = Field(None, description="With current_trace: the trace id the request carried.")


class Cut(OutputModel):
    """Where a text field was cut, and how to read the rest."""

    field: str = Field(description="The field that was cut.")
    shown_from: int = Field(description="First character shown.")
    shown_to: int = Field(description="Character after the last one shown.")
    length: int = Field(description="The field's whole length in characters (as JSON text when it is not text).")
    read_on: str = Field(description="How to read on.")


class LoggedScore(OutputModel):
    """A score the log already has, by evaluator."""

    evaluator: str = Field(description="The evaluator's slug, name or id.")
    id: str | None = Field(None, description="The score's id (update_score takes it).")
    score_value_type: str | None = Field(None, description="The evaluator's type.")
    value: str | None = Field(None, description="The value, as JSON text.")
    is_passed: bool | None = Field(None, description="Respan's verdict, when the evaluator has a passing condition.")
    explanation: str | None = Field(None, description="The grader's explanation, if any.")


class LogDetail(OutputModel):
    """One log, as get_log shows it: the fields asked for, text cut where long, and the scores on it."""

    log_id: str = Field(description="The log's unique_id.")
    input: str | None = Field(None, description="input, as text (JSON text when it is not text); cut where long.")
    output: str | None = Field(None, description="output, as text (JSON text when it is not text); cut where long.")
    prompt_messages: str | None = Field(None, description="prompt_messages, as text (JSON text when it is not text); cut where long.")
    completion_message: str | None = Field(None, description="completion_message, as text (JSON text when it is not text); cut where long.")
    tools: str | None = Field(None, description="tools, as text (JSON text when it is not text); cut where long.")
    tool_calls: str | None = Field(None, description="tool_calls, as text (JSON text when it is not text); cut where long.")
    full_request: str | None = Field(None, description="full_request, as text (JSON text when it is not text); cut where long.")
    full_response: str | None = Field(None, description="full_response, as text (JSON text when it is not text); cut where long.")
    trace_unique_id: str | None = Field(None, description="The log's trace_unique_id.")
    span_unique_id: str | None = Field(None, description="The log's span_unique_id.")
    span_parent_id: str | None = Field(None, description="The log's span_parent_id.")
    span_name: str | None = Field(None, description="The log's span_name.")
    span_workflow_name: str | None = Field(None, description="The log's span_workflow_name.")
    environment: str | None = Field(None, description="The log's environment.")
    customer_identifier: str | None = Field(None, description="The log's customer_identifier.")
    custom_identifier: str | None = Field(None, description="The log's custom_identifier.")
    thread_identifier: str | None = Field(None, description="The log's thread_identifier.")
    session_identifier: str | None = Field(None, description="The log's session_identifier.")
    prompt_id: str | None = Field(None, description="The log's prompt_id.")
    model: str | None = Field(None, description="The log's model.")
    status: str | None = Field(None, description="The log's status.")
    error_message: str | None = Field(None, description="The log's error_message.")
    timestamp: str | None = Field(None, description="The log's timestamp.")
    status_code: int | None = Field(None, description="The HTTP status the call answered with.")
    cost: float | None = Field(None, description="The log's cost.")
    latency: float | None = Field(None, description="The log's latency.")
    prompt_tokens: float | None = Field(None, description="The log's prompt_tokens.")
    completion_tokens: float | None = Field(None, description="The log's completion_tokens.")
    total_tokens: float | None = Field(None, description="The log's total_tokens.")
    metadata: dict[str, Any] | None = Field(None, description="The metadata logged with it.")
    cut: list[Cut] | None = Field(None, description="The text fields that were cut, and how to read on.")
    blurred: list[str] | None = Field(None, description="Fields Respan keeps blurred: their content is not shown.")
    scores: list[LoggedScore] | None = Field(None, description="The scores already on this log, by evaluator.")
    missing: list[str] | None = Field(None, description="Fields asked for that this log does not have.")


def window(value: Any, offset: int, limit: int) -> tuple[str, int]:
    """Characters `offset` to `offset + limit` of a field as text (JSON text when not a string), and the
    field's whole length; measured as it is encoded, so memory stays bounded by `limit`."""
    if isinstance(value, str):
        return value[offset : offset + limit], len(value)
    kept: list[str] = []
    length = 0
    end = offset + limit
    for piece in json.JSONEncoder(ensure_ascii=False, check_circular=False).iterencode(value):
        start = length
        length += len(piece)
        if length > offset and start < end:
            kept.append(piece[max(0, offset - start) : end - start])
    return "".join(kept), length


def score_of(key: str, raw: Any) -> LoggedScore | None:
    """One entry of a log's `scores` map; None when it is not an object."""
    if not isinstance(raw, dict):
        return None
    label = next((raw[k] for k in ("evaluator_slug", "evaluator_name", "evaluator_id") if isinstance(raw.get(k), str)), key)
    value = next(
        (raw[field] for field in ("numerical_value", "boolean_value", "categorical_value", "string_value", "json_value")
         if raw.get(field) is not None),
        None,
    )

    def text(name: str) -> str | None:
        return raw[name] if isinstance(raw.get(name), str) else None

    return LoggedScore(
        evaluator=label,
        id=text("id"),
        score_value_type=text("score_value_type"),
        value=None if value is None else json.dumps(value, ensure_ascii=False),
        is_passed=raw["is_passed"] if isinstance(raw.get("is_passed"), bool) else None,
        explanation=text("explanation"),
    )
