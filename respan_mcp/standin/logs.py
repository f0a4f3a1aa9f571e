"""Logs (spans) as Respan serves them: the filtered list, and one log whole with its scores.

`POST /api/request-logs/list/` takes its window, environment, sort and page in the query and
its filters in the body: `{"filters": {FIELD: {"operator": OP, "value": [...]}}, "operator": "AND"}`.
The list view leaves the heavy content out; `GET /api/request-logs/{unique_id}/` gives all of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from respan_mcp.standin.answers import NOT_FOUND, Answer, detail, paginate
from respan_mcp.standin.filters import FilterError, matches, parse_filters, parse_time
from respan_mcp.standin.scores import find_evaluator, now_iso
from respan_mcp.standin.store import Record, Store
from respan_mcp.standin.values import VALUE_FIELDS

LOGS_PAGE = {"default_size": 100, "max_size": 1000}
CONTENT_FIELDS = (
    "input",
    "output",
    "prompt_messages",
    "completion_message",
    "full_request",
    "full_response",
    "tools",
    "tool_calls",
)
SORT_FIELDS = frozenset({"timestamp", "start_time", "cost", "latency", "total_request_tokens", "model", "status"})


def make_log(unique_id: str, **fields: Any) -> Record:
    """A log as the API stores it: every documented field, null unless given."""
    stamp = fields.pop("timestamp", None) or now_iso()
    return {
        "id": unique_id,
        "unique_id": unique_id,
        "trace_unique_id": None,
        "span_unique_id": None,
        "span_parent_id": None,
        "span_name": None,
        "span_workflow_name": None,
        "log_type": "chat",
        "is_root_span": fields.get("span_parent_id") is None,
        "timestamp": stamp,
        "start_time": stamp,
        **{name: None for name in CONTENT_FIELDS},
        "model": None,
        "status": "success",
        "status_code": 200,
        "error_message": None,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_request_tokens": 0,
        "cost": 0.0,
        "latency": 0.0,
        "metadata": {},
        "environment": "prod",
        "customer_identifier": None,
        "custom_identifier": None,
        "thread_identifier": None,
        "session_identifier": None,
        "group_identifier": None,
        "prompt_id": None,
        **fields,
    }


def list_logs(store: Store, query: dict[str, str], body: Any, url: str) -> Answer:
    try:
        conditions = parse_filters(body)
        window = [parse_time(query[name]) if query.get(name) else None for name in ("start_time", "end_time")]
    except FilterError as exc:
        return detail(400, str(exc))
    except ValueError:
        return detail(400, "start_time and end_time must be ISO 8601 date-times, such as 2025-01-31T12:00:00Z.")
    sort_by = query.get("sort_by", "-timestamp")
    if sort_by.lstrip("-") not in SORT_FIELDS:
        return detail(400, f"Cannot sort by '{sort_by}': sort by one of {', '.join(sorted(SORT_FIELDS))}, "
                           "with a leading '-' for descending.")
    start, end = window
    found = [
        log
        for log in store.list_logs()
        if matches(log, conditions)
        and (start is None or parse_time(log["timestamp"]) >= start)
        and (end is None or parse_time(log["timestamp"]) <= end)
        and (not query.get("environment") or log.get("environment") == query["environment"])
    ]
    found.sort(key=_sort_key(sort_by.lstrip("-")), reverse=sort_by.startswith("-"))
    include = [name.strip() for name in query.get("include_fields", "").split(",") if name.strip()]
    shown = [{k: log.get(k) for k in include} if include else _list_view(log) for log in found]
    return paginate(shown, query, url, **LOGS_PAGE)


def _sort_key(field: str) -> Callable[[Record], tuple[bool, Any]]:
    """Logs without the field sort first (last when descending); times as times, whatever their offset."""
    moment = field in ("timestamp", "start_time")

    def key(log: Record) -> tuple[bool, Any]:
        value = log.get(field)
        return (value is not None, (parse_time(value) if moment else value) if value is not None else 0)

    return key


def _list_view(log: Record) -> Record:
    return {k: v for k, v in log.items() if k not in CONTENT_FIELDS}


def get_log(store: Store, unique_id: str) -> Answer:
    """The whole log, with `scores`: one entry per evaluator, from the scores written to it (the
    latest when several scorers scored it with the same evaluator)."""
    log = store.get_log(unique_id)
    if log is None:
        return NOT_FOUND
    scores: dict[str, Record] = {}
    for score in store.scores_for_log(unique_id):
        evaluator = find_evaluator(store, score["evaluator_id"]) if score.get("evaluator_id") else None
        key = score.get("evaluator_id") or score.get("evaluator_slug") or score["id"]
        scores[key] = {
            "id": score["id"],
            "evaluator_id": score.get("evaluator_id"),
            "evaluator_slug": score.get("evaluator_slug"),
            "evaluator_name": score.get("evaluator_name"),
            "score_value_type": evaluator.get("score_value_type") if evaluator else None,
            **{name: score.get(name) for name in VALUE_FIELDS},
            "is_passed": score.get("is_passed"),
            "explanation": score.get("explanation"),
        }
    return Answer(200, log | {"scores": scores})
