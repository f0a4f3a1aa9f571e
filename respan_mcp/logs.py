"""The log tools: find the run, then read it, so an agent grades what it can see.

`find_logs` turns flat, typed filters into Respan's filter body (checked before anything is
sent) and lists summaries, never content. `get_log` reads one whole log and shows what grading
needs, each text field cut to `max_chars` with a note of how to read on, and the scores already
on it. Both read with the caller's key, through the one call path.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from respan_mcp import client as routes
from respan_mcp.arguments import (
    DEFAULT_MAX_CHARS,
    DEFAULT_PAGE_SIZE,
    DEFAULT_WINDOW_DAYS,
    LOG_CONTENT,
    LOG_DETAILS,
    LOG_IDENTIFIERS,
    LOG_WHOLE_EXCHANGE,
    FindLogs,
    GetLog,
)
from respan_mcp.errors import InvalidRequestError, UnexpectedAnswerError
from respan_mcp.log_results import Cut, LogDetail, LogPage, LogSummary, score_of, window
from respan_mcp.tools import READ, Call, Tool

# The filters find_logs takes as they are, by Respan's field names (equality).
EQUALS = (
    "custom_identifier", "thread_identifier", "trace_unique_id", "customer_identifier", "prompt_id", "span_name",
    "environment", "model", "status",
)
DEFAULT_FIELDS = (*LOG_CONTENT, *LOG_DETAILS, *LOG_IDENTIFIERS)
NO_TRACE = (
    "this request carried no trace context (_meta.traceparent), so there is no current trace to find: pass "
    "trace_unique_id, custom_identifier or thread_identifier instead (your run's own identifiers)"
)


def filters_of(query: FindLogs, trace_id: str | None) -> dict[str, Any]:
    """Respan's filter body for the arguments; raises InvalidRequestError when current_trace has no trace."""
    filters: dict[str, Any] = {
        name: {"operator": "", "value": [value]} for name in EQUALS if (value := getattr(query, name)) is not None
    }
    if query.current_trace:
        if trace_id is None:
            raise InvalidRequestError(NO_TRACE)
        filters["trace_unique_id"] = {"operator": "", "value": [trace_id]}
    if query.root_spans_only:
        filters["is_root_span"] = {"operator": "", "value": [True]}
    if query.metadata_key is not None:
        filters[f"metadata__{query.metadata_key}"] = {"operator": "", "value": [query.metadata_value]}
    return filters


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def find_logs(call: Call, query: FindLogs) -> LogPage:
    trace = call.trace_id
    filters = filters_of(query, trace)
    end = query.end_time or datetime.now(UTC)
    start = query.start_time or end - timedelta(days=DEFAULT_WINDOW_DAYS)
    if start >= end:
        raise InvalidRequestError(f"start_time ({_iso(start)}) must be before end_time ({_iso(end)})")
    page = query.page or 1
    params = {
        "page": page,
        "page_size": query.page_size or DEFAULT_PAGE_SIZE,
        "sort_by": "-timestamp",
        "start_time": _iso(start),
        "end_time": _iso(end),
    }
    data = await call.client.send(call.caller, routes.list_logs(filters, params))
    logs = [summary for item in routes.results(data) if (summary := LogSummary.of(item)) is not None]
    count = data.get("count") if isinstance(data, dict) else None
    return LogPage(
        count=count if isinstance(count, int) and not isinstance(count, bool) and count >= 0 else len(logs),
        logs=logs,
        next_page=page + 1 if isinstance(data, dict) and data.get("next") else None,
        start_time=_iso(start),
        end_time=_iso(end),
        trace_unique_id=trace if query.current_trace else None,
    )


async def get_log(call: Call, query: GetLog) -> LogDetail:
    log = await call.client.send(call.caller, routes.get_log(query.log_id))
    if not isinstance(log, dict):
        raise UnexpectedAnswerError(f"the Respan API answered without a log for '{query.log_id}'; check RESPAN_BASE_URL")
    limit, offset = query.max_chars or DEFAULT_MAX_CHARS, query.offset or 0
    shown: dict[str, Any] = {}
    cuts: list[Cut] = []
    blurred = _blurred(log)
    missing: list[str] = []
    for name in query.fields or DEFAULT_FIELDS:
        value = log.get(name)
        if name in blurred:
            continue
        if value is None:
            missing.append(name) if query.fields else None
        elif name in (*LOG_CONTENT, *LOG_WHOLE_EXCHANGE):
            text, length = window(value, offset, limit)
            shown[name] = text
            if offset > 0 or length > offset + limit:
                cuts.append(_cut(name, offset, min(length, offset + limit), length, limit))
        elif name == "scores":
            entries = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
            shown["scores"] = [score for key, raw in entries if (score := score_of(str(key), raw)) is not None]
        elif name == "metadata":
            shown["metadata"] = value if isinstance(value, dict) else None
        elif name in ("cost", "latency", "prompt_tokens", "completion_tokens", "total_tokens"):
            shown[name] = float(value) if _finite(value) else None
        elif name == "status_code":
            shown[name] = value if isinstance(value, int) and not isinstance(value, bool) else None
        else:
            shown[name] = value if isinstance(value, str) else str(value)
    return LogDetail(
        log_id=query.log_id, cut=cuts or None, blurred=sorted(blurred) or None, missing=missing or None, **shown
    )


def _cut(name: str, start: int, end: int, length: int, limit: int) -> Cut:
    read_on = (
        f"call get_log with fields ['{name}'] and offset {end} for the next {limit} characters"
        if end < length
        else "this is the end of the field"
    )
    return Cut(field=name, shown_from=start, shown_to=end, length=length, read_on=read_on)


def _blurred(log: dict[str, Any]) -> set[str]:
    """Fields Respan keeps blurred: `blurred: true` blurs the content, a list names the fields."""
    flag = log.get("blurred")
    if flag is True:
        return {*LOG_CONTENT, *LOG_WHOLE_EXCHANGE}
    return {name for name in flag if isinstance(name, str)} if isinstance(flag, list) else set()


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


TOOLS: tuple[Tool[Any], ...] = (
    Tool(
        "find_logs",
        find_logs,
        FindLogs,
        LogPage,
        title="Find logs",
        annotations=READ,
        description=(
            "Find Respan logs (spans) to grade, newest first, by the run's identifiers (custom_identifier, "
            "thread_identifier, trace_unique_id, customer_identifier), prompt_id, span_name, environment, model, "
            "status, root spans only, or one metadata key and value; every filter given must hold. current_trace: "
            "true finds the logs of the trace this request belongs to. The window is start_time..end_time (ISO 8601; "
            f"default the last {DEFAULT_WINDOW_DAYS} days, stated in the result). Rows are summaries (log_id, time, "
            "span, model, status, identifiers): read one with get_log. Respan records a span when it ends, so a run "
            "still going may not be listed yet."
        ),
    ),
    Tool(
        "get_log",
        get_log,
        GetLog,
        LogDetail,
        title="Read a log",
        annotations=READ,
        description=(
            "Read one Respan log by log_id: what the run was asked and answered (input, output, prompt and "
            "completion messages, tool calls), model, status and error, identifiers, metadata, and the scores "
            f"already on it by evaluator. Each text field is cut at max_chars (default {DEFAULT_MAX_CHARS}); `cut` says "
            "where, the field's full length and how to read on (fields and offset). full_request and full_response "
            "are shown only when asked for in fields. Blurred content is named in `blurred`, not shown."
        ),
    ),
)
