"""The Respan API's behaviour as an ASGI app over a `Store`: routes, auth, the trailing-slash rule, 429s.

Routing is on the raw path, split at `/` before percent-decoding, so an encoded id (`a%2Fb`)
stays in its segment as it does behind Respan's Django router. A request's way through: the
optional `intercept` hook (the tests' recording and scripted faults), the trailing-slash rule
(GET is redirected, a write without the slash is Django's HTML 404), the rate limit, the key,
then the route.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from respan_mcp.standin import logs, scores
from respan_mcp.standin.answers import NOT_FOUND, Answer
from respan_mcp.standin.store import Store

Intercept = Callable[[Request, str, Any], Awaitable[Response | None]]
"""Sees (request, raw path, parsed body) first; a response it returns is the answer."""


def scorer_for(key: str) -> str:
    """The scorer Respan derives from the key's user: stable per key, and no part of the key itself."""
    return "user:" + hashlib.sha256(key.encode()).hexdigest()[:8]


class RateWindow:
    """Respan's per-organisation limit: at most `per_minute` requests in any sliding 60 s."""

    def __init__(self, per_minute: int | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._seen: deque[float] = deque()

    def clear(self) -> None:
        self._seen.clear()

    def wait_needed(self) -> int | None:
        """None when this request may go ahead (and counts it); else the seconds until one may."""
        if self.per_minute is None:
            return None
        now = self._clock()
        while self._seen and now - self._seen[0] >= 60:
            self._seen.popleft()
        if len(self._seen) >= self.per_minute:
            return max(1, math.ceil(60 - (now - self._seen[0])))
        self._seen.append(now)
        return None


class RespanStandin:
    """An ASGI app answering as Respan does, from `store`.

    `accepts_key` decides which bearer keys authenticate; `strict_logs` makes a score route 404 for
    a log the store does not hold (as Respan does; the tests' stand-in may relax it to take any id);
    `check_values` refuses a value its evaluator cannot take (the wrong field, out of range, not a choice).
    The attributes may be changed while it serves: each request reads them afresh.
    """

    def __init__(
        self,
        store: Store,
        *,
        accepts_key: Callable[[str], bool],
        strict_logs: bool = True,
        check_values: bool = True,
        rate_limit_per_minute: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        intercept: Intercept | None = None,
    ) -> None:
        self.store = store
        self.accepts_key = accepts_key
        self.strict_logs = strict_logs
        self.check_values = check_values
        self.rate = RateWindow(rate_limit_per_minute, clock)
        self.intercept = intercept
        methods = ["GET", "POST", "PATCH", "DELETE"]
        self.app = Starlette(routes=[Route("/{path:path}", self._dispatch, methods=methods)])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    async def _dispatch(self, request: Request) -> Response:
        raw_path = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1").split("?", 1)[0]
        raw_body = await request.body()
        try:
            body: Any = await request.json() if raw_body else None
        except ValueError:
            body = raw_body.decode("utf-8", "replace")
        if self.intercept is not None and (answer := await self.intercept(request, raw_path, body)) is not None:
            return answer
        if not raw_path.endswith("/"):
            if request.method == "GET":
                return RedirectResponse(raw_path + "/", status_code=301)
            return HTMLResponse("<h1>Not Found</h1>", 404)
        if (wait := self.rate.wait_needed()) is not None:
            return JSONResponse(
                {"detail": "Rate limit exceeded", "retry_after": wait}, 429, headers={"Retry-After": str(wait)}
            )
        token = request.headers.get("authorization", "")
        if not token:
            return JSONResponse({"detail": "Authentication credentials were not provided."}, 401)
        key = token.removeprefix("Bearer ")
        if not token.startswith("Bearer ") or not self.accepts_key(key):
            return JSONResponse({"detail": "Invalid API key."}, 401)
        segments = [unquote(s) for s in raw_path.strip("/").split("/")]
        query = {k: v[-1] for k, v in parse_qs(request.url.query).items()}
        base = str(request.base_url).rstrip("/")
        status, answer_body = self.route(request.method, segments, body, query, scorer_for(key), base)
        if answer_body is None:
            return Response(status_code=status)
        return JSONResponse(answer_body, status)

    def route(self, method: str, seg: list[str], body: Any, query: dict[str, str], scorer: str, base: str) -> Answer:
        """The answer to an authenticated request for the path `seg` (decoded segments)."""
        store, strict, check = self.store, self.strict_logs, self.check_values
        match method, seg:
            case "POST", ["api", "logs", log_id, "scores"]:
                return scores.upsert(store, log_id, body, scorer, strict_logs=strict, check_values=check)
            case "GET", ["api", "logs", log_id, "scores"]:
                url = f"{base}/api/logs/{log_id}/scores/"
                return scores.list_log_scores(store, log_id, query, url, strict_logs=strict)
            case "GET", ["api", "scores", score_id]:
                return scores.get_score(store, score_id)
            case "PATCH", ["api", "scores", score_id]:
                return scores.patch(store, score_id, body, check_values=check)
            case "DELETE", ["api", "scores", score_id]:
                return scores.delete_score(store, score_id)
            case "GET", ["api", "evaluators", evaluator_id]:
                return scores.get_evaluator(store, evaluator_id)
            case "GET", ["api", "evaluators"]:
                return scores.search_evaluators(store, query, f"{base}/api/evaluators/")
            case "POST", ["api", "request-logs", "list"]:
                return logs.list_logs(store, query, body, f"{base}/api/request-logs/list/")
            case "GET", ["api", "request-logs", unique_id]:
                return logs.get_log(store, unique_id)
        return NOT_FOUND
