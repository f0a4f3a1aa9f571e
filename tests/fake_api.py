"""The tests' loopback stand-in for the Respan API: the package's own model of it, in memory.

The behaviour (upsert semantics, `is_passed`, the value checks, DRF-style errors, the
trailing-slash rule, 429 with `retry_after`, routing on the raw path, the log endpoints) is
`respan_mcp.standin`, the same model `respan-mcp --sandbox` serves, so the tests and the
sandbox keep each other honest. This adds what only tests need: the requests as they arrived,
scripted faults (`fail_next`), a latency, and `/_fake/` control routes for the benchmarks,
which start it as a process: `python tests/fake_api.py --port 0` prints `READY <url>`.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

if __package__ in (None, ""):  # run as a script by the benchmarks: the checkout's package, not an install
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from respan_mcp.standin.app import RespanStandin  # noqa: E402
from respan_mcp.standin.logs import make_log  # noqa: E402
from respan_mcp.standin.scores import make_evaluator  # noqa: E402
from respan_mcp.standin.store import MemoryStore, Record  # noqa: E402


@dataclass
class RecordedRequest:
    method: str
    path: str  # raw, percent-encoding kept
    query: str
    headers: dict[str, str]
    body: Any


@dataclass
class _Held:
    release: threading.Event
    method: str | None


@dataclass
class _Scripted:
    status: int
    body: dict[str, Any] | str | None
    headers: dict[str, str]
    delay: float
    method: str | None = None  # only requests with this method take it; None: any request


class FakeRespan:
    """The state behind the stand-in; `.app` serves it. `scores`, `evaluators` and `logs` are the
    store's live dicts: a test may read them, or change them as Respan's own processes would.

    `check_values` (off by default, for now: one test of the verdict sends a string_value to a
    numerical evaluator) turns on Respan's checks of a value against its evaluator."""

    def __init__(
        self,
        api_keys: Iterable[str] = ("test-key",),
        latency: float = 0.0,
        rate_limit_per_minute: int | None = None,
        accept_any_log: bool = False,
        check_values: bool = False,
    ) -> None:
        self.api_keys = set(api_keys)
        self.latency = latency
        self.requests: list[RecordedRequest] = []
        self.store = MemoryStore()
        self.scores = self.store.scores
        self.evaluators = self.store.evaluators
        self.logs = self.store.logs
        self._scripted: deque[_Scripted] = deque()
        self._held: list[_Held] = []
        self.app = RespanStandin(
            self.store,
            accepts_key=lambda key: key in self.api_keys,
            strict_logs=not accept_any_log,
            check_values=check_values,
            rate_limit_per_minute=rate_limit_per_minute,
            intercept=self._intercept,
        )

    @property
    def accept_any_log(self) -> bool:
        return not self.app.strict_logs

    @accept_any_log.setter
    def accept_any_log(self, value: bool) -> None:
        self.app.strict_logs = not value

    @property
    def rate_limit_per_minute(self) -> int | None:
        return self.app.rate.per_minute

    @rate_limit_per_minute.setter
    def rate_limit_per_minute(self, value: int | None) -> None:
        self.app.rate.per_minute = value

    # -- set-up used by tests --------------------------------------------------------
    def add_log(self, log_id: str, **fields: Any) -> Record:
        """A log the API knows (a score for another is a 404 unless `accept_any_log`); `fields` as
        `GET /api/request-logs/{id}/` answers them (input, output, trace_unique_id, metadata, ...)."""
        log = make_log(log_id, **fields)
        self.store.put_log(log)
        return log

    def add_evaluator(self, **fields: Any) -> Record:
        """An evaluator as the API serves it: see `respan_mcp.standin.scores.make_evaluator`."""
        evaluator = make_evaluator(**fields)
        self.store.put_evaluator(evaluator)
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

    def hold(self, method: str | None = None) -> threading.Event:
        """Keep every answer (to requests of `method`, if given) until the returned event is set.

        A call then stays in flight exactly as long as a test needs (a signal sent, a drain seen),
        where a `delay` would be a guess at how long that takes. The request is recorded on arrival."""
        held = _Held(threading.Event(), method)
        self._held.append(held)
        return held.release

    def release_all(self) -> None:
        """Answer everything held (a test that failed before it released its hold ends here)."""
        for held in self._held:
            held.release.set()
        self._held.clear()

    def writes(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method in ("POST", "PATCH")]

    def reset(self) -> None:
        self.requests.clear()
        self.store.clear_scores()
        self._scripted.clear()
        self.release_all()
        self.app.rate.clear()

    # -- what only tests add to the behaviour --------------------------------------------
    async def _intercept(self, request: Request, raw_path: str, body: Any) -> Response | None:
        if raw_path.startswith("/_fake/"):
            return self._control(request.method, raw_path)
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(RecordedRequest(request.method, raw_path, request.url.query, headers, body))
        for held in self._held:
            while held.method in (None, request.method) and not held.release.is_set():
                await asyncio.sleep(0.005)  # a threading.Event, so that sync tests can release it too
        if self.latency:
            await asyncio.sleep(self.latency)
        scripted = next((s for s in self._scripted if s.method in (None, request.method)), None)
        if scripted is None:
            return None
        self._scripted.remove(scripted)
        if scripted.delay:
            await asyncio.sleep(scripted.delay)
        if isinstance(scripted.body, str):
            return HTMLResponse(scripted.body, scripted.status, headers=scripted.headers)
        return JSONResponse(scripted.body, scripted.status, headers=scripted.headers)

    def _control(self, method: str, path: str) -> Response:
        if path == "/_fake/state" and method == "GET":
            return JSONResponse({"requests": len(self.requests), "writes": len(self.writes()), "scores": len(self.scores)})
        if path == "/_fake/reset" and method == "POST":
            self.reset()
            return JSONResponse({"ok": True})
        return JSONResponse({"detail": "Not found."}, 404)


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
