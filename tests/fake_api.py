"""A loopback stand-in for the Respan API, honest to its documented behaviour.

Used by the end-to-end tests (in-process, `RunningFakeRespan`) and by the benchmarks
(as a separate process: `python tests/fake_api.py --port 0` prints `READY <url>`).
It keeps the behaviours the server relies on: upsert semantics (201 then 200 for the
same log, evaluator and scorer), `is_passed` from the evaluator's passing condition,
DRF-style error bodies, the trailing-slash rule, the 429 body with `retry_after`, and
routing on the raw path so an encoded id stays in its segment.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import operator
import signal
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, unquote

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

VALUE_FIELDS = ("numerical_value", "boolean_value", "categorical_value", "string_value", "json_value")
UPSERT_FIELDS = {
    "evaluator_id",
    "evaluator_slug",
    "timestamp",
    "environment",
    "prompt_id",
    "prompt_version_number",
    "dataset_id",
    "automation_id",
    "scorer",
    *VALUE_FIELDS,
}


@dataclass
class RecordedRequest:
    method: str
    path: str  # raw, percent-encoding kept
    query: str
    headers: dict[str, str]
    body: Any


@dataclass
class _Scripted:
    status: int
    body: dict[str, Any] | str | None
    headers: dict[str, str]
    delay: float
    method: str | None = None  # only requests with this method take it; None: any request


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _error(status: int, body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, status_code=status)


def _value_errors(body: dict[str, Any]) -> dict[str, list[str]]:
    """Type checks the backend's serializer makes on the value fields."""
    errors: dict[str, list[str]] = {}
    number = body.get("numerical_value")
    if number is not None and (
        isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number)
    ):
        errors["numerical_value"] = ["A valid number is required."]
    if body.get("boolean_value") is not None and not isinstance(body["boolean_value"], bool):
        errors["boolean_value"] = ["Must be a valid boolean."]
    choices = body.get("categorical_value")
    if choices is not None and not (isinstance(choices, list) and all(isinstance(c, str) for c in choices)):
        errors["categorical_value"] = ["Expected a list of strings."]
    if body.get("string_value") is not None and not isinstance(body["string_value"], str):
        errors["string_value"] = ["Not a valid string."]
    text = body.get("json_value")
    if text is not None:
        try:
            if not isinstance(text, str):
                raise ValueError
            json.loads(text)
        except ValueError:
            errors["json_value"] = ["Value must be valid JSON."]
    return errors


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "gte": operator.ge,
    "gt": operator.gt,
    "lte": operator.le,
    "lt": operator.lt,
    "eq": operator.eq,
}


def _is_passed(evaluator: dict[str, Any] | None, score: dict[str, Any]) -> bool | None:
    """The backend's verdict: the evaluator's primary-score condition on the score's primary value
    (boolean_value for boolean evaluators, numerical_value otherwise); null without an evaluator (a
    custom slug), a condition, or a primary value."""
    if evaluator is None:
        return None
    conditions = evaluator.get("passing_conditions")
    condition = conditions.get("primary_score") if isinstance(conditions, dict) else None
    if not isinstance(condition, dict) or condition.get("operator") not in _COMPARE:
        return None
    primary = score.get("boolean_value" if evaluator.get("score_value_type") == "boolean" else "numerical_value")
    threshold = condition.get("value")
    if isinstance(threshold, list) and len(threshold) == 1:  # Respan's filter format wraps values in lists
        threshold = threshold[0]
    if primary is None or not isinstance(threshold, int | float):
        return None
    return _COMPARE[condition["operator"]](primary, threshold)


class FakeRespan:
    """The state behind the stand-in; `.app` serves it."""

    def __init__(
        self,
        api_keys: Iterable[str] = ("test-key",),
        latency: float = 0.0,
        rate_limit_per_minute: int | None = None,
        accept_any_log: bool = False,
    ) -> None:
        self.api_keys = set(api_keys)
        self.latency = latency
        self.rate_limit_per_minute = rate_limit_per_minute
        self.accept_any_log = accept_any_log
        self.requests: list[RecordedRequest] = []
        self.scores: dict[str, dict[str, Any]] = {}
        self.evaluators: dict[str, dict[str, Any]] = {}
        self.logs: set[str] = set()
        self._scripted: deque[_Scripted] = deque()
        self._window: deque[float] = deque()
        self.app = Starlette(routes=[Route("/{path:path}", self._dispatch, methods=["GET", "POST", "PATCH", "DELETE"])])

    # -- set-up used by tests --------------------------------------------------------
    def add_log(self, log_id: str) -> None:
        self.logs.add(log_id)

    def add_evaluator(
        self,
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
    ) -> dict[str, Any]:
        """An evaluator as the API serves it; `extra` adds or overrides fields (legacy `categorical_choices`,
        `configurations`, `type`, ...). `llm_config` holds `model`, `evaluator_definition`, `scoring_rubric`;
        `passing_conditions` e.g. `{"primary_score": {"operator": "gte", "value": 3}}` decides `is_passed`."""
        evaluator = {
            "id": id,
            "evaluator_slug": slug,
            "name": name,
            "score_value_type": score_value_type,
            "score_config": score_config,
            "type": "llm",
            "description": description,
            "llm_config": llm_config,
            "passing_conditions": passing_conditions,
            "created_at": _now(),
            "updated_at": _now(),
            **extra,
        }
        self.evaluators[id] = evaluator
        return evaluator

    def fail_next(
        self,
        status: int,
        body: dict[str, Any] | str | None = None,
        *,
        headers: dict[str, str] | None = None,
        times: int = 1,
        delay: float = 0.0,
        method: str | None = None,
    ) -> None:
        """Answer the next `times` API requests (of `method`, if given) with this, before normal handling (FIFO)."""
        for _ in range(times):
            self._scripted.append(_Scripted(status, body, headers or {}, delay, method))

    def writes(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method in ("POST", "PATCH")]

    def reset(self) -> None:
        self.requests.clear()
        self.scores.clear()
        self._scripted.clear()
        self._window.clear()

    # -- the app -----------------------------------------------------------------------
    async def _dispatch(self, request: Request) -> Response:
        raw_path = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1").split("?", 1)[0]
        if raw_path.startswith("/_fake/"):
            return self._control(request.method, raw_path)
        try:
            body: Any = await request.json() if await request.body() else None
        except ValueError:
            body = (await request.body()).decode("utf-8", "replace")
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(RecordedRequest(request.method, raw_path, request.url.query, headers, body))
        if self.latency:
            await asyncio.sleep(self.latency)
        scripted = next((s for s in self._scripted if s.method in (None, request.method)), None)
        if scripted is not None:
            self._scripted.remove(scripted)
            if scripted.delay:
                await asyncio.sleep(scripted.delay)
            if isinstance(scripted.body, str):
                return HTMLResponse(scripted.body, scripted.status, headers=scripted.headers)
            return JSONResponse(scripted.body, scripted.status, headers=scripted.headers)
        if not raw_path.endswith("/"):
            if request.method == "GET":
                return RedirectResponse(raw_path + "/", status_code=301)
            return HTMLResponse("<h1>Not Found</h1>", 404)
        if (limited := self._rate_limited()) is not None:
            return limited
        token = headers.get("authorization", "")
        if not token:
            return _error(401, {"detail": "Authentication credentials were not provided."})
        key = token.removeprefix("Bearer ")
        if not token.startswith("Bearer ") or key not in self.api_keys:
            return _error(401, {"detail": "Invalid API key."})
        scorer = "user:" + hashlib.sha256(key.encode()).hexdigest()[:8]
        segments = [unquote(s) for s in raw_path.strip("/").split("/")]
        query = {k: v[-1] for k, v in parse_qs(request.url.query).items()}
        return self._route(request.method, segments, body, query, scorer, str(request.base_url).rstrip("/"))

    def _rate_limited(self) -> Response | None:
        if self.rate_limit_per_minute is None:
            return None
        now = time.monotonic()
        while self._window and now - self._window[0] >= 60:
            self._window.popleft()
        if len(self._window) >= self.rate_limit_per_minute:
            wait = max(1, math.ceil(60 - (now - self._window[0])))
            return JSONResponse(
                {"detail": "Rate limit exceeded", "retry_after": wait}, 429, headers={"Retry-After": str(wait)}
            )
        self._window.append(now)
        return None

    def _route(
        self, method: str, seg: list[str], body: Any, query: dict[str, str], scorer: str, base: str
    ) -> Response:
        match method, seg:
            case "POST", ["api", "logs", log_id, "scores"]:
                return self._upsert(log_id, body, scorer)
            case "GET", ["api", "logs", log_id, "scores"]:
                scores = [s for s in self.scores.values() if s["log_id"] == log_id]
                return self._page(scores, query, f"{base}/api/logs/{log_id}/scores/")
            case "GET", ["api", "scores", score_id]:
                score = self.scores.get(score_id)
                return JSONResponse(score) if score else _error(404, {"detail": "Score not found."})
            case "PATCH", ["api", "scores", score_id]:
                return self._patch(score_id, body)
            case "DELETE", ["api", "scores", score_id]:
                if self.scores.pop(score_id, None) is None:
                    return _error(404, {"detail": "Score not found."})
                return Response(status_code=204)
            case "GET", ["api", "evaluators", evaluator_id]:
                evaluator = self.evaluators.get(evaluator_id)
                return JSONResponse(evaluator) if evaluator else _error(404, {"detail": "Evaluator not found."})
            case "GET", ["api", "evaluators"]:
                term = query.get("search", "").lower()
                found = [
                    e for e in self.evaluators.values() if term in e["evaluator_slug"].lower() or term in e["name"].lower()
                ]
                return self._page(found, query, f"{base}/api/evaluators/")
        return _error(404, {"detail": "Not found."})

    def _upsert(self, log_id: str, body: Any, scorer: str) -> Response:
        if not isinstance(body, dict):
            return _error(400, {"detail": "JSON parse error - Expecting an object."})
        unknown = sorted(set(body) - UPSERT_FIELDS)
        if unknown:
            return _error(400, {name: ["Unknown field."] for name in unknown})
        if bool(body.get("evaluator_id")) == bool(body.get("evaluator_slug")):
            return _error(
                400,
                {"detail": "Validation error", "errors": {"evaluator": ["Provide either evaluator_id or evaluator_slug."]}},
            )
        if all(body.get(f) is None for f in VALUE_FIELDS):
            return _error(400, {"non_field_errors": ["At least one score value is required."]})
        if errors := _value_errors(body):
            return _error(400, errors)
        if log_id not in self.logs and not self.accept_any_log:
            return _error(404, {"detail": "Log not found."})
        evaluator = self.evaluators.get(body["evaluator_id"]) if body.get("evaluator_id") else None
        if body.get("evaluator_id") and evaluator is None:
            return _error(404, {"detail": "Evaluator not found."})
        if evaluator is None and body.get("evaluator_slug"):
            evaluator = next((e for e in self.evaluators.values() if e["evaluator_slug"] == body["evaluator_slug"]), None)
        evaluator_key = evaluator["id"] if evaluator else body["evaluator_slug"]
        existing = next(
            (s for s in self.scores.values() if (s["log_id"], s["_evaluator_key"], s["scorer"]) == (log_id, evaluator_key, scorer)),
            None,
        )
        fields = {k: v for k, v in body.items() if k not in ("evaluator_id", "evaluator_slug", "scorer")}
        if existing is not None:
            existing.update({f: None for f in VALUE_FIELDS} | fields)
            existing["is_passed"] = _is_passed(evaluator, existing)
            return JSONResponse(self._public(existing), 200)
        score: dict[str, Any] = {
            "id": "score_" + uuid.uuid4().hex[:16],
            "created_at": _now(),
            "type": "llm" if evaluator else "custom",
            "environment": "prod",
            **{f: None for f in VALUE_FIELDS},
            "is_passed": None,
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
            "evaluator": {k: evaluator[k] for k in ("id", "evaluator_slug", "name", "score_value_type")}
            if evaluator
            else None,
            "_evaluator_key": evaluator_key,
            **fields,
        }
        score["is_passed"] = _is_passed(evaluator, score)
        self.scores[score["id"]] = score
        return JSONResponse(self._public(score), 201)

    def _patch(self, score_id: str, body: Any) -> Response:
        if not isinstance(body, dict):
            return _error(400, {"detail": "JSON parse error - Expecting an object."})
        fixed = sorted(set(body) - set(VALUE_FIELDS))
        if fixed:
            return _error(400, {name: ["This field cannot be updated."] for name in fixed})
        if errors := _value_errors(body):
            return _error(400, errors)
        score = self.scores.get(score_id)
        if score is None:
            return _error(404, {"detail": "Score not found."})
        score.update(body)
        score["is_passed"] = _is_passed(self.evaluators.get(score["evaluator_id"] or ""), score)
        return JSONResponse(self._public(score), 200)

    @staticmethod
    def _public(score: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in score.items() if not k.startswith("_")}

    def _page(self, items: list[dict[str, Any]], query: dict[str, str], url: str) -> Response:
        try:
            page = max(1, int(query.get("page", 1)))
            size = min(100, max(1, int(query.get("page_size", 20))))
        except ValueError:
            return _error(400, {"detail": "Invalid page."})
        start = (page - 1) * size
        chunk = [self._public(i) for i in items[start : start + size]]
        more = start + size < len(items)
        return JSONResponse(
            {
                "count": len(items),
                "next": f"{url}?page={page + 1}&page_size={size}" if more else None,
                "previous": f"{url}?page={page - 1}&page_size={size}" if page > 1 else None,
                "results": chunk,
            }
        )

    def _control(self, method: str, path: str) -> Response:
        if path == "/_fake/state" and method == "GET":
            return JSONResponse({"requests": len(self.requests), "writes": len(self.writes()), "scores": len(self.scores)})
        if path == "/_fake/reset" and method == "POST":
            self.reset()
            return JSONResponse({"ok": True})
        return _error(404, {"detail": "Not found."})


class RunningFakeRespan:
    """Serve a FakeRespan on a free loopback port in a background thread.

    Requests go to whatever `fake` is now, so one running server can serve test after test with a
    fresh FakeRespan each (tests/conftest.py's `api`): stopping uvicorn costs a fraction of a second.
    """

    def __init__(self, fake: FakeRespan, port: int = 0) -> None:
        self.fake = fake
        self._server = uvicorn.Server(
            uvicorn.Config(self._app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", interface="asgi3")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self.url = ""

    def __enter__(self) -> RunningFakeRespan:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake Respan API did not start")
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)

    async def _app(self, scope: Any, receive: Any, send: Any) -> None:
        await self.fake.app(scope, receive, send)


def main() -> None:
    parser = argparse.ArgumentParser(description="Loopback stand-in for the Respan API.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds to wait before each answer")
    parser.add_argument("--rate-limit", type=int, default=None, help="requests a minute before 429")
    parser.add_argument("--key", action="append", default=None, help="accepted API key (repeatable)")
    parser.add_argument("--log", action="append", default=[], help="known log id (repeatable)")
    parser.add_argument("--any-log", action="store_true", help="accept every log id")
    args = parser.parse_args()
    fake = FakeRespan(args.key or ["test-key"], args.latency, args.rate_limit, args.any_log)
    for log_id in args.log:
        fake.add_log(log_id)
    with RunningFakeRespan(fake, args.port) as running:
        print(f"READY {running.url}", flush=True)
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        stop.wait()
    sys.exit(0)


if __name__ == "__main__":
    main()
