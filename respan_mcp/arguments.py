"""Every tool's arguments as a model: the one source of truth for validation, schemas and docs.

Argument names are the API's own field names. The value fields come from `values.py`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from respan_mcp.config import BATCH_DEADLINE_MAX, BATCH_DEADLINE_MIN
from respan_mcp.schema import flat_schema
from respan_mcp.settings import setting
from respan_mcp.values import ScoreValues


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
            f"(default {setting('batch_deadline').default_shown()}, from {BATCH_DEADLINE_MIN:g} to {BATCH_DEADLINE_MAX:g}). Keep it under your client's "
            "tool-call timeout."
        ),
    )
    dry_run: bool | None = Field(
        None,
        description="true to check every item and see, per item, whether it is valid, the exact request and "
        "whether its value would pass, without writing anything.",
    )


# -- reading logs ------------------------------------------------------------------------------------

# What get_log can show, by Respan's own field names. Content fields are text an agent reads (cut to
# max_chars); the rest are small. full_request and full_response are the whole exchange, shown only if asked.
LOG_CONTENT = ("input", "output", "prompt_messages", "completion_message", "tools", "tool_calls")
LOG_WHOLE_EXCHANGE = ("full_request", "full_response")
LOG_DETAILS = (
    "model", "status", "status_code", "error_message", "timestamp", "cost", "latency",
    "prompt_tokens", "completion_tokens", "total_tokens", "metadata", "scores",
)
LOG_IDENTIFIERS = (
    "trace_unique_id", "span_unique_id", "span_parent_id", "span_name", "span_workflow_name", "environment",
    "customer_identifier", "custom_identifier", "thread_identifier", "session_identifier", "prompt_id",
)
LOG_FIELDS = (*LOG_CONTENT, *LOG_WHOLE_EXCHANGE, *LOG_DETAILS, *LOG_IDENTIFIERS)
LogField = Literal[LOG_FIELDS]  # type: ignore[valid-type]
DEFAULT_MAX_CHARS = 4000
MAX_CHARS = 20_000


class GetLog(BaseModel):
    """Arguments of `get_log`."""

    model_config = ConfigDict(extra="forbid")

    log_id: str = Field(min_length=1, description="ID of the log (span) to read: its unique_id, as the score tools take it.")
    fields: list[LogField] | None = Field(
        None,
        min_length=1,
        description="Which fields to show (default: everything grading needs, which is all but full_request and "
        "full_response; ask for those by name).",
    )
    max_chars: int | None = Field(
        None,
        ge=100,
        le=MAX_CHARS,
        description=f"Characters shown of each text field, {100} to {MAX_CHARS} (default {DEFAULT_MAX_CHARS}); a longer "
        "field is cut, and the result says where and how to read on.",
    )
    offset: int | None = Field(
        None, ge=0, description="Character to start each text field from, to read on after a cut (default 0)."
    )


FIND_LOGS_PAGE_MAX = 50
DEFAULT_WINDOW_DAYS = 7


class FindLogs(BaseModel):
    """Arguments of `find_logs`: every filter given must hold (AND)."""

    model_config = ConfigDict(extra="forbid")

    custom_identifier: str | None = Field(None, min_length=1, description="The run's own identifier, e.g. a ticket id.")
    thread_identifier: str | None = Field(None, min_length=1, description="The conversation thread's identifier.")
    trace_unique_id: str | None = Field(None, min_length=1, description="The trace's id (32 hex characters for OTel).")
    customer_identifier: str | None = Field(None, min_length=1, description="The end user's identifier.")
    prompt_id: str | None = Field(None, min_length=1, description="ID of the prompt the logs used.")
    span_name: str | None = Field(None, min_length=1, description="The span's name, e.g. 'agent.run'.")
    environment: str | None = Field(None, min_length=1, description="Environment, e.g. 'production'.")
    model: str | None = Field(None, min_length=1, description="Model name, e.g. 'gpt-4o'.")
    status: str | None = Field(None, min_length=1, description="Log status, e.g. 'success' or 'error'.")
    root_spans_only: bool | None = Field(None, description="true for root spans only (one per traced run).")
    metadata_key: str | None = Field(
        None, min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", description="A metadata key to filter on, with metadata_value."
    )
    metadata_value: str | None = Field(None, description="The value metadata_key must have.")
    current_trace: bool | None = Field(
        None,
        description="true for the logs of the trace this request belongs to (from the W3C trace context the MCP "
        "client sends in _meta.traceparent).",
    )
    start_time: datetime | None = Field(
        None, description=f"Earliest log time, ISO 8601 (default {DEFAULT_WINDOW_DAYS} days before end_time)."
    )
    end_time: datetime | None = Field(None, description="Latest log time, ISO 8601 (default now).")
    page: int | None = Field(None, ge=1, description="Page number, from 1 (default 1).")
    page_size: int | None = Field(
        None, ge=1, le=FIND_LOGS_PAGE_MAX, description=f"Logs per page, 1 to {FIND_LOGS_PAGE_MAX} (default {DEFAULT_PAGE_SIZE})."
    )

    @model_validator(mode="after")
    def _checked(self) -> FindLogs:
        if (self.metadata_key is None) != (self.metadata_value is None):
            raise ValueError("metadata_key and metadata_value go together: give both, or neither")
        for name in ("start_time", "end_time"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} needs a time zone, e.g. 2026-12-01T00:00:00Z")
        if self.start_time and self.end_time and self.start_time >= self.end_time:
            raise ValueError("start_time must be before end_time")
        return self
