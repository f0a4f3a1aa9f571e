"""Scores and evaluators as Respan serves them: the upsert, the update, the lists, the lookups.

Each handler takes the store and the request's parts and returns an `Answer`; the order of the
checks is the backend's (shape, then values, then what exists), so a test sees the error Respan
would give first.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from respan_mcp.standin.answers import Answer, detail, field_errors, paginate
from respan_mcp.standin.store import Record, ScoreKey, Store, public
from respan_mcp.standin.values import UPSERT_FIELDS, VALUE_FIELDS, evaluator_errors, is_passed, type_errors

SCORES_PAGE = {"default_size": 20, "max_size": 100}
_NOT_AN_OBJECT = detail(400, "JSON parse error - Expecting an object.")


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_evaluator(
    *,
    id: str,
    slug: str,
    name: str,
    score_value_type: str,
    score_config: dict[str, Any] | None = None,
    description: str | None = "",
    llm_config: dict[str, Any] | None = None,
    passing_conditions: dict[str, Any] | None = None,
    **extra: Any,
) -> Record:
    """An evaluator as the API serves it; `extra` adds or overrides fields (legacy `categorical_choices`,
    `configurations`, `type`, ...). `llm_config` holds `model`, `evaluator_definition`, `scoring_rubric`;
    `passing_conditions` e.g. `{"primary_score": {"operator": "gte", "value": 3}}` decides `is_passed`."""
    stamp = now_iso()
    return {
        "id": id,
        "evaluator_slug": slug,
        "name": name,
        "score_value_type": score_value_type,
        "score_config": score_config,
        "type": "llm",
        "description": description,
        "llm_config": llm_config,
        "passing_conditions": passing_conditions,
        "created_at": stamp,
        "updated_at": stamp,
        **extra,
    }


def find_evaluator(store: Store, evaluator_id: str) -> Record | None:
    """By id; an id with a version (`evl_abc:2`) names the same evaluator."""
    return store.get_evaluator(evaluator_id) or store.get_evaluator(evaluator_id.split(":", 1)[0])


def get_evaluator(store: Store, evaluator_id: str) -> Answer:
    evaluator = find_evaluator(store, evaluator_id)
    return Answer(200, evaluator) if evaluator else detail(404, "Evaluator not found.")


def search_evaluators(store: Store, query: dict[str, str], url: str) -> Answer:
    """The legacy list: `search` matches the slug or the name, in any case."""
    term = query.get("search", "").lower()
    found = [e for e in store.list_evaluators() if any(term in _searchable(e.get(f)) for f in ("evaluator_slug", "name"))]
    return paginate(found, query, url, **SCORES_PAGE)


def _searchable(value: Any) -> str:
    """A field as the search reads it: a test may store an evaluator whose slug or name is not text."""
    return value.lower() if isinstance(value, str) else ""


def upsert(store: Store, log_id: str, body: Any, scorer: str, *, strict_logs: bool, check_values: bool = True) -> Answer:
    """POST /api/logs/{log_id}/scores/: 201 with a new score, 200 when it replaced the one this
    scorer already gave this log for this evaluator (every value field is replaced, unset ones by null)."""
    if not isinstance(body, dict):
        return _NOT_AN_OBJECT
    unknown = sorted(set(body) - UPSERT_FIELDS)
    if unknown:
        return field_errors({name: ["Unknown field."] for name in unknown})
    if bool(body.get("evaluator_id")) == bool(body.get("evaluator_slug")):
        return Answer(
            400, {"detail": "Validation error", "errors": {"evaluator": ["Provide either evaluator_id or evaluator_slug."]}}
        )
    if all(body.get(f) is None for f in VALUE_FIELDS):
        return field_errors({"non_field_errors": ["At least one score value is required."]})
    if errors := type_errors(body):
        return field_errors(errors)
    if strict_logs and store.get_log(log_id) is None:
        return detail(404, "Log not found.")
    evaluator = find_evaluator(store, body["evaluator_id"]) if body.get("evaluator_id") else None
    if body.get("evaluator_id") and evaluator is None:
        return detail(404, "Evaluator not found.")
    if evaluator is None:
        evaluator = next((e for e in store.list_evaluators() if e["evaluator_slug"] == body["evaluator_slug"]), None)
    values = {f: body.get(f) for f in VALUE_FIELDS}
    if check_values and evaluator is not None and (errors := evaluator_errors(evaluator, values)):
        return field_errors(errors)
    fields = {k: v for k, v in body.items() if k not in ("evaluator_id", "evaluator_slug", "scorer")}
    changes = values | fields | {"is_passed": is_passed(evaluator, values)}
    created: Record = {
        "id": "score_" + uuid.uuid4().hex[:16],
        "created_at": now_iso(),
        "type": (evaluator.get("type") or "llm") if evaluator else "custom",
        "environment": "prod",
        "cost": None,
        "evaluator_id": evaluator["id"] if evaluator else None,
        "evaluator_slug": evaluator["evaluator_slug"] if evaluator else body["evaluator_slug"],
        "evaluator_name": evaluator["name"] if evaluator else None,
        "scorer": scorer,
        "log_id": log_id,
        "prompt_id": None,
        "prompt_version_number": None,
        "dataset_id": None,
        "automation_id": None,
        "status": "success",
        "error_message": None,
        "evaluator": {k: evaluator[k] for k in ("id", "evaluator_slug", "name", "score_value_type")} if evaluator else None,
    } | changes
    key = ScoreKey(log_id, evaluator["id"] if evaluator else body["evaluator_slug"], scorer)
    score, was_created = store.upsert_score(key, created, changes)
    return Answer(201 if was_created else 200, public(score))


def patch(store: Store, score_id: str, body: Any, *, check_values: bool = True) -> Answer:
    """PATCH /api/scores/{id}/: only the value fields change; the verdict is worked out again."""
    if not isinstance(body, dict):
        return _NOT_AN_OBJECT
    fixed = sorted(set(body) - set(VALUE_FIELDS))
    if fixed:
        return field_errors({name: ["This field cannot be updated."] for name in fixed})
    if errors := type_errors(body):
        return field_errors(errors)
    current = store.get_score(score_id)
    if current is None:
        return detail(404, "Score not found.")
    evaluator = find_evaluator(store, current.get("evaluator_id") or "") if current.get("evaluator_id") else None
    merged = {f: current.get(f) for f in VALUE_FIELDS} | body
    if check_values and evaluator is not None and (errors := evaluator_errors(evaluator, merged)):
        return field_errors(errors)

    def change(score: Record) -> Record:
        score.update(body)
        return score | {"is_passed": is_passed(evaluator, score)}

    updated = store.update_score(score_id, change)
    return Answer(200, public(updated)) if updated else detail(404, "Score not found.")


def get_score(store: Store, score_id: str) -> Answer:
    score = store.get_score(score_id)
    return Answer(200, public(score)) if score else detail(404, "Score not found.")


def delete_score(store: Store, score_id: str) -> Answer:
    return Answer(204, None) if store.delete_score(score_id) else detail(404, "Score not found.")


def list_log_scores(store: Store, log_id: str, query: dict[str, str], url: str, *, strict_logs: bool) -> Answer:
    if strict_logs and store.get_log(log_id) is None:
        return detail(404, "Log not found.")
    return paginate(store.scores_for_log(log_id), query, url, **SCORES_PAGE)
