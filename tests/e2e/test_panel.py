"""The log-scores panel (an MCP App) as a host renders it: headless Chromium, a host page, live results.

`tests/panel_host.html` plays the host: it iframes the panel sandboxed and from another origin,
served under a strict CSP, answers `ui/initialize` and posts a tool result. The results are the
live server's, through the SDK's Client against the loopback API. Chromium is Debian's, driven
over its DevTools protocol on a pipe (no port, no websocket, no browser download); without it
the browser tests skip.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest
from mcp import Client

from respan_mcp.config import Config
from respan_mcp.panel import PANEL_MIME, PANEL_URI, panel_html
from respan_mcp.server import build_server
from tests.conftest import API_KEY, LOG_ID
from tests.fake_api import FakeRespan, RunningFakeRespan

HERE = Path(__file__).resolve().parents[1]  # tests/, where panel_host.html lives
SCREENSHOT = HERE.parent / "docs" / "log-scores-panel.png"
LOG_SCREENSHOT = HERE.parent / "docs" / "log-panel.png"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
Test = TypeVar("Test", bound=Callable[..., None])
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium); the panel tests drive it headless"
)


def in_chromium(test: Test) -> Test:
    """A test that drives the panel in headless Chromium: slow, and skipped where there is no Chromium."""
    marked: Test = needs_chromium(pytest.mark.slow(test))
    return marked


# What hosts apply when a resource declares no domains (the MCP Apps spec's default), minus 'self'.
STRICT_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; object-src 'none'"
HOSTILE = 'Cites the docs. Markup stays text: <img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'

# Respan's evaluators, as the stand-in API serves them.
EVALUATORS: list[dict[str, Any]] = [
    {"id": "evl_help", "slug": "helpfulness", "name": "Helpfulness", "score_value_type": "numerical",
     "score_config": {"min_score": 1, "max_score": 5}},
    {"id": "evl_cov", "slug": "coverage", "name": "Coverage", "score_value_type": "percentage"},
    {"id": "evl_safe", "slug": "is_safe", "name": "Safe", "score_value_type": "boolean"},
    {"id": "evl_tone", "slug": "tone", "name": "Tone", "score_value_type": "single_select",
     "score_config": {"choices": [{"name": n.title(), "value": n} for n in ("polite", "neutral", "rude")]}},
    {"id": "evl_topics", "slug": "topics", "name": "Topics", "score_value_type": "multi_select",
     "score_config": {"choices": [{"name": n.title(), "value": n} for n in ("math", "code", "writing")]}},
    {"id": "evl_note", "slug": "feedback", "name": "Reviewer feedback", "score_value_type": "text"},
    {"id": "evl_shape", "slug": "answer_shape", "name": "Answer shape", "score_value_type": "json"},
]
# One score per evaluator: the value written, and the verdict Respan's evaluation would record.
WRITES: list[tuple[dict[str, Any], bool | None]] = [
    ({"evaluator_slug": "helpfulness", "numerical_value": 4}, True),
    ({"evaluator_slug": "coverage", "numerical_value": 62}, False),
    ({"evaluator_slug": "is_safe", "boolean_value": True}, True),
    ({"evaluator_slug": "tone", "categorical_value": ["polite"]}, True),
    ({"evaluator_slug": "topics", "categorical_value": ["math", "code"]}, None),
    ({"evaluator_slug": "feedback", "string_value": HOSTILE}, None),
    ({"evaluator_slug": "answer_shape", "json_value": {"steps": 3, "cites": ["docs/api.md"], "complete": True}}, None),
]
PASSING = {"helpfulness": "numerical_value >= 3", "coverage": "numerical_value >= 80", "is_safe": "boolean_value == true"}
# A run as get_log reads it: an answer long enough to be cut, and markup where an agent's text may carry it.
ANSWER = (
    "To reset your password, open Settings, then Security, and choose Reset password. Respan sends a link to "
    "the address on your account; it works for 30 minutes. If no mail arrives, check the spam folder first.\n\n"
)
RUN = {
    "span_name": "support.answer",
    "model": "gpt-4o",
    "timestamp": "2026-12-03T10:00:00Z",
    "trace_unique_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "custom_identifier": "ticket-42",
    "thread_identifier": "thread-7",
    "prompt_messages": [
        {"role": "system", "content": "You are the support agent. Answer in steps."},
        {"role": "user", "content": "How do I reset my password?"},
    ],
    "input": "How do I reset my password?",
    "output": ANSWER * 150,
    "latency": 1.84,
    "cost": 0.0012,
    "prompt_tokens": 412,
    "completion_tokens": 96,
    "metadata": {"team": "support", "release": "2026.12"},
}
HOSTILE_RUN = RUN | {
    "input": "Reset it. " + HOSTILE,
    "completion_message": {"role": "assistant", "content": '<img src=x onerror="window.pwned=3">Done.'},
    "metadata": {"team": "<script>window.pwned=4</script>"},
    "span_name": "<b>support.answer</b>",
}


# ---- the panel as a file: fast checks, no browser ----------------------------------------


def test_panel_is_one_self_contained_document_under_300_kb() -> None:
    html = panel_html()
    assert html.startswith("<!DOCTYPE html>") and len(html.encode()) < 300_000
    assert PANEL_URI.startswith("ui://") and PANEL_MIME == "text/html;profile=mcp-app"
    # Nothing loaded from anywhere: no src/href attribute, no url(), no @import, no fetch.
    assert not re.search(r"\s(src|href)\s*=", html) and "url(" not in html and "@import" not in html
    assert not re.search(r"\b(fetch|XMLHttpRequest|WebSocket|EventSource|importScripts)\b", html)


def test_panel_never_turns_data_into_markup() -> None:
    html = panel_html()
    # No inline event-handler attributes (a CSP without 'unsafe-inline' for them would block them),
    # and no API that parses a string as HTML or code.
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", html)
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setAttribute(\"style\""):
        assert sink not in html


def test_panel_mime_type_is_the_sdks() -> None:
    from mcp.server.apps import APP_MIME_TYPE

    assert PANEL_MIME == APP_MIME_TYPE


# ---- live results -------------------------------------------------------------------------


def stand_in() -> FakeRespan:
    fake = FakeRespan(api_keys=(API_KEY,))
    fake.add_log(LOG_ID)
    for evaluator in EVALUATORS:
        fake.add_evaluator(**evaluator)
    return fake


async def live_calls(api: RunningFakeRespan, calls: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Each call's CallToolResult as the server sends it (wire form: structuredContent, content, isError)."""
    results = []
    async with Client(build_server(Config(api_key=API_KEY, base_url=api.url, max_retries=0))) as client:
        for name, arguments in calls:
            result = await client.call_tool(name, arguments)
            results.append(result.model_dump(mode="json", by_alias=True, exclude_none=True))
    return results


def write_scores(api: RunningFakeRespan) -> None:
    """Write WRITES through the live server, then set each verdict as Respan's evaluation would."""
    written = anyio.run(live_calls, api, [("upsert_log_score", {"log_id": LOG_ID} | values) for values, _ in WRITES])
    assert not any(result.get("isError") for result in written), written
    verdicts = {values["evaluator_slug"]: passed for values, passed in WRITES}
    for score in api.fake.scores.values():
        score["is_passed"] = verdicts[score["evaluator_slug"]]


def listed_scores(api: RunningFakeRespan) -> dict[str, Any]:
    """WRITES written, then LOG_ID's scores as list_log_scores answers them."""
    write_scores(api)
    (listed,) = anyio.run(live_calls, api, [("list_log_scores", {"log_id": LOG_ID})])
    return listed


def with_evaluator_facts(result: dict[str, Any], fake: FakeRespan) -> dict[str, Any]:
    """The page with each score's evaluator_range, evaluator_choices and passing_condition filled in.

    What the server adds when it knows the evaluator (issue 19); `setdefault`, so that values the
    server sends itself are kept as they are.
    """
    result = json.loads(json.dumps(result))
    for score in result["structuredContent"]["scores"]:
        evaluator = fake.evaluators.get(score.get("evaluator_id") or "")
        config = (evaluator or {}).get("score_config") or {}
        if "min_score" in config:
            score.setdefault("evaluator_range", {"min": config["min_score"], "max": config["max_score"]})
        if "choices" in config:
            score.setdefault("evaluator_choices", [choice["value"] for choice in config["choices"]])
        if score.get("evaluator_slug") in PASSING:
            score.setdefault("passing_condition", PASSING[score["evaluator_slug"]])
    return result


# ---- the browser ----------------------------------------------------------------------------


def _above_4(fd: int) -> int:
    """`fd` renumbered to 10 or more, so that placing the pipe at 3 and 4 in the child cannot clobber it."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class Chromium:
    """Headless Chromium on its DevTools protocol over a pipe (--remote-debugging-pipe: fds 3 and 4)."""

    def __init__(self, executable: str, profile: str) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        to_browser_r, from_browser_w = _above_4(to_browser_r), _above_4(from_browser_w)
        flags = [
            "--headless", "--no-sandbox", "--remote-debugging-pipe", f"--user-data-dir={profile}",
            "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-extensions",
            "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--force-color-profile=srgb",
            "--site-per-process", "about:blank",
        ]
        # The pipe must be fds 3 and 4 in the browser: bash (dash takes one-digit fds only) moves them and execs it.
        self.process = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}', executable, *flags],
            pass_fds=(to_browser_r, from_browser_w),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._lock = threading.Lock()
        self._changed = threading.Condition()
        self._next_id = 0
        self._answers: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.on_event: Callable[[dict[str, Any]], None] = lambda event: None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._from_browser, 1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                with self._changed:
                    if "id" in message:
                        self._answers[message["id"]] = message
                    else:
                        self.events.append(message)
                        self.on_event(message)
                    self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> int:
        with self._lock:
            self._next_id += 1
            message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
            if session:
                message["sessionId"] = session
            os.write(self._to_browser, json.dumps(message).encode() + b"\0")
            return self._next_id

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        number = self.send(method, params, session)
        with self._changed:
            if not self._changed.wait_for(lambda: number in self._answers or not self._reader.is_alive(), timeout=60):
                raise TimeoutError(f"Chromium did not answer {method} within 60 s")
            if number not in self._answers:
                raise RuntimeError(f"Chromium exited while answering {method}")
            answer = self._answers.pop(number)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer["result"]
        return result

    def close(self) -> None:
        try:
            self.send("Browser.close")
            self.process.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        self._reader.join(timeout=10)
        os.close(self._from_browser)


class HostPage:
    """One tab showing tests/panel_host.html, with the panel's iframes attached for evaluation."""

    def __init__(self, browser: Chromium, url: str, width: int, color_scheme: str) -> None:
        self.browser = browser
        self.frames: list[str] = []  # the panels' DevTools sessions, in the order they attached
        self.frame_messages: list[dict[str, Any]] = []  # console errors, exceptions and CSP reports in the panels
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        browser.on_event = self._on_event
        browser.call("Emulation.setDeviceMetricsOverride",
                     {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False}, self.session)
        browser.call("Emulation.setEmulatedMedia",
                     {"features": [{"name": "prefers-color-scheme", "value": color_scheme}]}, self.session)
        # The panels start paused until their console is watched, so no early report is missed.
        browser.call("Target.setAutoAttach",
                     {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True}, self.session)
        browser.call("Page.enable", {}, self.session)
        browser.call("Page.navigate", {"url": url}, self.session)

    def _on_event(self, event: dict[str, Any]) -> None:
        # Runs on the reader thread: send, never wait for an answer here.
        method, params = event["method"], event.get("params", {})
        if method == "Target.attachedToTarget" and event.get("sessionId") == self.session:
            child = params["sessionId"]
            if params["targetInfo"]["type"] == "iframe":
                self.frames.append(child)
                for domain in ("Runtime.enable", "Log.enable"):
                    self.browser.send(domain, {}, child)
            self.browser.send("Runtime.runIfWaitingForDebugger", {}, child)
        elif event.get("sessionId") in self.frames:
            if method == "Runtime.exceptionThrown" or (method == "Runtime.consoleAPICalled" and params["type"] == "error"):
                self.frame_messages.append(params)
            elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
                self.frame_messages.append(params["entry"])

    def evaluate(self, expression: str, frame: int | None = None) -> Any:
        """`expression`'s value (awaited, if a promise) in the host page, or in panel number `frame`."""
        session = self.session if frame is None else self.frames[frame]
        params = {"expression": expression, "returnByValue": True, "awaitPromise": True}
        answer = self.browser.call("Runtime.evaluate", params, session)
        if "exceptionDetails" in answer:
            raise AssertionError(f"{expression!r} threw: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def wait_until(self, expression: str, frame: int | None = None, timeout: float = 60) -> Any:
        """Poll until `expression` is truthy; the timeout only bounds a failure."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if frame is None or len(self.frames) > frame:
                    value = self.evaluate(expression, frame)
                    if value:
                        return value
            except (AssertionError, RuntimeError):
                pass  # the document is still loading
            if time.monotonic() > deadline:
                raise AssertionError(f"{expression!r} never held; panel messages: {self.frame_messages}")
            time.sleep(0.05)

    def panel_text(self, frame: int = 0) -> str:
        return str(self.evaluate("document.body.innerText", frame))

    def screenshot(self, path: Path) -> bytes:
        height = self.evaluate("Math.ceil(document.documentElement.scrollHeight)")
        width = self.evaluate("Math.ceil(document.documentElement.scrollWidth)")
        self.browser.call("Emulation.setDeviceMetricsOverride",
                          {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, self.session)
        self.evaluate("new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() => done(true))))")
        data = base64.b64decode(self.browser.call("Page.captureScreenshot", {"format": "png"}, self.session)["data"])
        path.write_bytes(data)
        return data

    def close(self) -> None:
        self.browser.on_event = lambda event: None
        self.browser.call("Target.detachFromTarget", {"sessionId": self.session})


class Site(ThreadingHTTPServer):
    """The host page on 127.0.0.1 and the panel on localhost: two origins, as hosts keep them."""

    setup: dict[str, Any] = {}


class Handler(BaseHTTPRequestHandler):
    server: Site

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        path = self.path.split("?", 1)[0]
        headers = {"Cache-Control": "no-store"}
        if path == "/host.html":
            body, kind = (HERE / "panel_host.html").read_bytes(), "text/html; charset=utf-8"
        elif path == "/panel.html":
            body, kind = panel_html().encode(), "text/html; charset=utf-8"
            headers["Content-Security-Policy"] = STRICT_CSP
        elif path == "/setup.json":
            body, kind = json.dumps(self.server.setup).encode(), "application/json"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        chromium = Chromium(CHROMIUM, profile)
        try:
            chromium.call("Browser.getVersion")
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    server = Site(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def live_api() -> Iterator[RunningFakeRespan]:
    with RunningFakeRespan(stand_in()) as running:
        yield running


@contextmanager
def show(browser: Chromium, site: Site, frames: list[dict[str, Any]], *, width: int = 800,
         color_scheme: str = "light", dark_page: bool = False) -> Iterator[HostPage]:
    """The host page with `frames` drawn in it, closed when the test is done with it."""
    port = site.server_address[1]
    site.setup = {"panel_url": f"http://localhost:{port}/panel.html", "frames": frames, "dark_page": dark_page}
    page = HostPage(browser, f"http://127.0.0.1:{port}/host.html", width, color_scheme)
    try:
        for index in range(len(frames)):
            page.wait_until("!!document.querySelector('main > :not(.status), .status.error')", index)
        yield page
    finally:
        page.close()


# ---- colours ---------------------------------------------------------------------------------


def rgb(css: str) -> tuple[float, float, float]:
    red, green, blue = (float(part) for part in re.findall(r"[\d.]+", css)[:3])
    return red, green, blue


def luminance(css: str) -> float:
    def channel(value: float) -> float:
        value /= 255
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

    red, green, blue = (channel(v) for v in rgb(css))
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(foreground: str, background: str) -> float:
    lighter, darker = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


# Each text's colour against the first opaque background behind it.
COLOURS = """[...document.querySelectorAll(%s)].map(node => {
  let back = node;
  while (back && getComputedStyle(back).backgroundColor.match(/rgba\\(.*, 0\\)|transparent/)) back = back.parentElement;
  return [node.className || node.tagName, getComputedStyle(node).color, getComputedStyle(back || document.body).backgroundColor];
})"""
TEXTS = (
    ".name, .slug, .num-value, .scale span, .badge, .chip, .text, .json, .meta, .cond, .sub, h1, .problem, .note, .status, "
    ".index, .content, .cut-note, .ids dt, .ids dd, .log-error, .explain, .label, .empty-value"
)


def assert_readable(page: HostPage, frame: int = 0) -> None:
    for name, colour, background in page.evaluate(COLOURS % json.dumps(TEXTS), frame):
        assert contrast(colour, background) >= 4.5, f"{name}: {colour} on {background}"


# ---- the panel in the browser -----------------------------------------------------------------


@in_chromium
@pytest.mark.parametrize("theme", ["light", "dark"])
def test_panel_draws_a_logs_scores_from_the_live_server(
    theme: str, browser: Chromium, site: Site, live_api: RunningFakeRespan
) -> None:
    listed = listed_scores(live_api)
    assert listed["structuredContent"]["count"] == len(WRITES)
    result = with_evaluator_facts(listed, live_api.fake)
    # The host's theme wins over the system's: the page asks for the other one.
    with show(browser, site, [{"result": result, "arguments": {"log_id": LOG_ID}, "context": {"theme": theme}}],
              color_scheme="dark" if theme == "light" else "light") as page:
        text = page.panel_text()
        assert f"Log {LOG_ID} · 7 scores" in text
        for name in ("Helpfulness", "Coverage", "Safe", "Tone", "Topics", "Reviewer feedback", "Answer shape"):
            assert name in text
        assert "3 passed" in text and "1 failed" in text and "3 without verdict" in text
        assert page.evaluate("document.querySelectorAll('.badge.pass').length", 0) == 4  # the tally and 3 cards
        assert page.evaluate("document.querySelectorAll('.card .badge.fail').length", 0) == 1

        # Numbers as bars within the evaluator's range (percentage: 0 to 100).
        meters = page.evaluate(
            "[...document.querySelectorAll('[role=meter]')].map(m => [m.getAttribute('aria-label'), "
            "m.getAttribute('aria-valuemin'), m.getAttribute('aria-valuemax'), m.getAttribute('aria-valuenow'), "
            "m.firstChild.style.width])", 0)
        assert meters == [["Helpfulness", "1", "5", "4", "75%"], ["Coverage", "0", "100", "62", "62%"]]
        assert "of 1–5" in text and "62%" in text
        assert "Passes when numerical_value >= 3" in text
        # Choices as chips, the chosen ones highlighted.
        chips = page.evaluate("[...document.querySelectorAll('.chip')].map(c => [c.textContent, c.classList.contains('chosen')])", 0)
        assert chips == [["✓ polite", True], ["neutral", False], ["rude", False],
                         ["✓ math", True], ["✓ code", True], ["writing", False]]
        assert "True" in text
        assert '"cites": [\n    "docs/api.md"\n  ]' in page.evaluate("document.querySelector('.json').textContent", 0)
        # The hostile string is text: shown whole, nothing of it became an element or ran.
        assert HOSTILE in text
        assert page.evaluate("[document.querySelectorAll('img').length, document.scripts.length, window.pwned]", 0) == [0, 1, None]
        # The environment and the time.
        created = [s["created_at"] for s in result["structuredContent"]["scores"]]
        assert page.evaluate("[...document.querySelectorAll('time')].map(t => t.getAttribute('datetime'))", 0) == created
        assert text.count("prod") == 7

        background = page.evaluate("getComputedStyle(document.body).backgroundColor", 0)
        assert (luminance(background) < 0.05) if theme == "dark" else (luminance(background) > 0.9)
        assert_readable(page)
        assert page.frame_messages == []  # no CSP report, no console error, no exception

        # The bridge, as the panel spoke it.
        sent = [entry["message"] for entry in page.evaluate("window.hostLog")]
        initialize = sent[0]
        assert initialize["method"] == "ui/initialize" and initialize["id"] is not None
        assert initialize["params"]["protocolVersion"] == "2026-01-26" and "appCapabilities" in initialize["params"]
        assert sent[1] == {"jsonrpc": "2.0", "method": "ui/notifications/initialized", "params": {}}
        sizes = [m["params"] for m in sent if m.get("method") == "ui/notifications/size-changed"]
        assert sizes and sizes[-1]["height"] == page.evaluate("Math.ceil(document.querySelector('main').getBoundingClientRect().height)", 0)
        assert page.evaluate("document.querySelector('iframe').getBoundingClientRect().height") >= sizes[-1]["height"]


@in_chromium
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_panel_follows_the_system_scheme_and_then_the_hosts_changes(
    scheme: str, browser: Chromium, site: Site, live_api: RunningFakeRespan
) -> None:
    listed = listed_scores(live_api)
    with show(browser, site, [{"result": listed, "arguments": {"log_id": LOG_ID}}], color_scheme=scheme) as page:
        def background() -> float:
            return luminance(page.evaluate("getComputedStyle(document.body).backgroundColor", 0))

        assert background() < 0.05 if scheme == "dark" else background() > 0.9
        assert_readable(page)
        other = "light" if scheme == "dark" else "dark"
        page.evaluate(f"notifyFrame(0, 'ui/notifications/host-context-changed', {{theme: '{other}'}})")
        page.wait_until(f"document.documentElement.dataset.theme === '{other}'", 0)
        assert background() < 0.05 if other == "dark" else background() > 0.9
        assert_readable(page)
        # With the server's evaluator facts (list_log_scores adds each evaluator's range): every bounded number has a bar.
        text = page.panel_text()
        assert "Helpfulness" in text and "4" in text
        assert page.evaluate("[...document.querySelectorAll('[role=meter]')].map(m => m.getAttribute('aria-label'))", 0) == [
            "Helpfulness",
            "Coverage",
        ]
        chips = page.evaluate("[...document.querySelectorAll('.chip')].map(c => c.textContent)", 0)
        assert chips == ["✓ polite", "neutral", "rude", "✓ math", "✓ code", "writing"]  # every choice, chosen ones ticked
        assert page.frame_messages == []


@in_chromium
def test_panel_draws_a_batch_outcome(browser: Chromium, site: Site, live_api: RunningFakeRespan) -> None:
    items = [
        {"log_id": LOG_ID, "evaluator_slug": "helpfulness", "numerical_value": 5},
        {"log_id": LOG_ID, "evaluator_slug": "helpfulness", "numerical_value": 9},  # outside 1..5: invalid
        {"log_id": "log-unknown", "evaluator_slug": "is_safe", "boolean_value": True},  # 404: failed
    ]
    (batch,) = anyio.run(live_calls, live_api, [("upsert_log_scores", {"scores": items})])
    outcome = batch["structuredContent"]
    assert [r["status"] for r in outcome["results"]] == ["written", "invalid", "failed"]
    with show(browser, site, [{"result": batch, "context": {"theme": "dark"}}]) as page:
        text = page.panel_text()
        assert "Batch write" in text and "3 scores sent" in text
        assert "1 written" in text and "1 invalid" in text and "1 failed" in text
        for item in outcome["results"]:
            assert f"#{item['index']}" in text
            if "error" in item:
                assert item["error"] in text
        statuses = page.evaluate("[...document.querySelectorAll('.card .badge')].map(b => b.textContent)", 0)
        assert statuses == ["written", "invalid", "failed"]
        assert page.evaluate("document.querySelector('.num-value').textContent", 0) == "5"
        assert_readable(page)
        assert page.frame_messages == []


@in_chromium
def test_panel_shows_deferred_items_and_the_next_step(browser: Chromium, site: Site, live_api: RunningFakeRespan) -> None:
    # Respan's rate limit on the first write: the rest of the batch comes back deferred, with what to do.
    live_api.fake.fail_next(429, {"detail": "Rate limit exceeded", "retry_after": 30}, headers={"Retry-After": "30"}, method="POST")
    items = [{"log_id": LOG_ID, "evaluator_slug": "is_safe", "boolean_value": True}]
    (batch,) = anyio.run(live_calls, live_api, [("upsert_log_scores", {"scores": items, "deadline_seconds": 10})])
    outcome = batch["structuredContent"]
    assert outcome["deferred"] == 1 and outcome["next_step"]
    with show(browser, site, [{"result": batch}]) as page:
        text = page.panel_text()
        assert "1 deferred" in text and outcome["next_step"] in text
        assert outcome["results"][0]["error"] in text
        assert page.frame_messages == []


@in_chromium
def test_panel_loads_the_next_page_through_the_host(browser: Chromium, site: Site, live_api: RunningFakeRespan) -> None:
    write_scores(live_api)
    first, second = anyio.run(live_calls, live_api, [
        ("list_log_scores", {"log_id": LOG_ID, "page_size": 4}),
        ("list_log_scores", {"log_id": LOG_ID, "page_size": 4, "page": 2}),
    ])
    assert first["structuredContent"]["next_page"] == 2
    call = {"name": "list_log_scores", "arguments": {"log_id": LOG_ID, "page_size": 4, "page": 2}}
    frame = {
        "result": first,
        "arguments": {"log_id": LOG_ID, "page_size": 4},
        "capabilities": {"serverTools": {}},
        "context": {"toolInfo": {"tool": {"name": "list_log_scores", "inputSchema": {"type": "object"}}}},
        "tool_calls": [{"params": call, "result": second}],
    }
    with show(browser, site, [frame]) as page:
        assert "Showing 4 of 7." in page.panel_text()
        assert page.evaluate("document.querySelectorAll('.card').length", 0) == 4
        page.evaluate("document.querySelector('.more button').click()", 0)
        page.wait_until("document.querySelectorAll('.card').length === 7", 0)
        assert "Showing" not in page.panel_text() and "Load page" not in page.panel_text()
        calls = [e["message"] for e in page.evaluate("window.hostLog") if e["message"].get("method") == "tools/call"]
        assert [sent["params"] for sent in calls] == [call]
        assert page.frame_messages == []


@in_chromium
def test_panel_shows_a_tool_error_as_its_text(browser: Chromium, site: Site, live_api: RunningFakeRespan) -> None:
    live_api.fake.fail_next(404, {"detail": "Log not found."})
    (failed,) = anyio.run(live_calls, live_api, [("list_log_scores", {"log_id": "log-9"})])
    assert failed["isError"]
    with show(browser, site, [{"result": failed, "arguments": {"log_id": "log-9"}}]) as page:
        assert page.panel_text().strip() == failed["content"][0]["text"]
        assert page.evaluate("document.querySelector('.status.error') !== null", 0)
        assert page.frame_messages == []


def read_log(api: RunningFakeRespan, fields: dict[str, Any], *reads: dict[str, Any]) -> list[dict[str, Any]]:
    """LOG_ID holding `fields`, with WRITES on it, read through the live server with get_log."""
    api.fake.add_log(LOG_ID, **fields)
    write_scores(api)
    results = anyio.run(live_calls, api, [("get_log", {"log_id": LOG_ID} | read) for read in reads])
    assert not any(result.get("isError") for result in results), results
    return results


GET_LOG = {"toolInfo": {"tool": {"name": "get_log", "inputSchema": {"type": "object"}}}}


@in_chromium
@pytest.mark.parametrize("theme", ["light", "dark"])
def test_panel_draws_a_log_as_text_with_its_scores_beside_it(
    theme: str, browser: Chromium, site: Site, live_api: RunningFakeRespan
) -> None:
    (result,) = read_log(live_api, HOSTILE_RUN, {})
    log = result["structuredContent"]
    assert [cut["field"] for cut in log["cut"]] == ["output"] and len(log["scores"]) == len(WRITES)
    with show(browser, site, [{"result": result, "arguments": {"log_id": LOG_ID}, "context": GET_LOG | {"theme": theme}}]) as page:
        text = page.panel_text()
        assert "<b>support.answer</b>" in text and f"Log {LOG_ID}" in text and "gpt-4o" in text and "success" in text
        assert "ticket-42" in text and "4bf92f3577b34da6a3ce929d0e0e4736" in text and "412 in / 96 out tokens" in text
        # Each text exactly as the server sent it (the cut one unchanged, the whole ones as indented JSON).
        contents = page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('.field')].map(f => "
            "[f.querySelector('h2').textContent, f.querySelector('pre')?.textContent]))", 0)
        assert contents["Input"] == log["input"] and HOSTILE in contents["Input"]
        assert contents["Output"] == log["output"] == RUN["output"][:4000]
        assert json.loads(contents["Prompt messages"]) == RUN["prompt_messages"]
        assert json.loads(contents["Completion message"]) == HOSTILE_RUN["completion_message"]
        assert json.loads(contents["Metadata"]) == HOSTILE_RUN["metadata"]
        # The cut, said plainly under the output, with how to read on.
        assert page.evaluate("[...document.querySelectorAll('.cut-note')].map(n => n.textContent)", 0) == [
            f"Cut at 4,000 of {len(RUN['output']):,} characters: {log['cut'][0]['read_on']}."
        ]
        # Markup in the log stayed text: no element made of it, nothing ran.
        assert page.evaluate("[document.querySelectorAll('img, b').length, document.scripts.length, window.pwned]", 0) == [0, 1, None]
        # The scores on the log, drawn as cards beside the content.
        cards = page.evaluate("[...document.querySelectorAll('.log-side .card .name')].map(n => n.textContent)", 0)
        assert cards == [values["evaluator_slug"] for values, _ in WRITES]
        assert "3 passed" in text and "1 failed" in text
        assert page.evaluate("document.querySelector('.log-side .label').textContent", 0) == "7 scores"
        assert page.evaluate("[...document.querySelectorAll('[role=meter]')].map(m => m.getAttribute('aria-label'))", 0) == ["coverage"]
        assert page.evaluate("document.querySelector('.log-side .text').textContent", 0) == HOSTILE
        beside = page.evaluate(
            "[document.querySelector('.log-main').getBoundingClientRect().right, "
            "document.querySelector('.log-side').getBoundingClientRect().left]", 0)
        assert beside[0] <= beside[1]

        background = page.evaluate("getComputedStyle(document.body).backgroundColor", 0)
        assert (luminance(background) < 0.05) if theme == "dark" else (luminance(background) > 0.9)
        assert_readable(page)
        assert page.frame_messages == []


@in_chromium
def test_panel_shows_a_logs_error_blurred_fields_and_a_read_on_window(
    browser: Chromium, site: Site, live_api: RunningFakeRespan
) -> None:
    failed = RUN | {"status": "error", "error_message": "Upstream timed out <i>after 30 s</i>", "blurred": ["input"]}
    whole, window = read_log(live_api, failed, {}, {"fields": ["output"], "offset": 4000})
    assert whole["structuredContent"]["blurred"] == ["input"] and "input" not in whole["structuredContent"]
    frames = [{"result": result, "arguments": {"log_id": LOG_ID}, "context": GET_LOG} for result in (whole, window)]
    with show(browser, site, frames, width=1700) as page:
        text = page.panel_text()
        assert "Error: Upstream timed out <i>after 30 s</i>" in text
        assert page.evaluate("document.querySelector('.log-error').getAttribute('role')", 0) == "alert"
        assert page.evaluate("document.querySelector('.tally .badge.fail').textContent", 0) == "error"
        blurred = page.evaluate("[...document.querySelectorAll('.field.blurred')].map(f => "
                                "[...f.querySelectorAll('h2, .badge, p')].map(n => n.textContent))", 0)
        assert blurred == [["Input", "blurred", "Blurred in Respan: its content is not shown."]]
        shown = page.evaluate("[...document.querySelectorAll('.field')].filter(f => f.querySelector('pre'))"
                              ".map(f => f.querySelector('h2').textContent)", 0)
        assert shown == ["Output", "Prompt messages", "Metadata"]  # no Input: it is blurred
        # The next window of the output: where it is and how to read on.
        (cut,) = window["structuredContent"]["cut"]
        assert page.evaluate("document.querySelector('.field pre').textContent", 1) == RUN["output"][4000:8000]
        assert page.evaluate("document.querySelector('.cut-note').textContent", 1) == (
            f"Characters 4,000–8,000 of {len(RUN['output']):,}: {cut['read_on']}."
        )
        assert page.evaluate("document.querySelectorAll('i').length", 0) == 0
        assert_readable(page)
        assert page.frame_messages == []


@in_chromium
def test_log_screenshot_light_and_dark(browser: Chromium, site: Site, live_api: RunningFakeRespan, tmp_path: Path) -> None:
    """A log and its scores in both themes; `UPDATE_SCREENSHOT=1` writes it to docs/."""
    (result,) = read_log(live_api, RUN, {"max_chars": 600})
    frames = [{"result": result, "arguments": {"log_id": LOG_ID}, "context": GET_LOG | {"theme": theme}, "width": 860}
              for theme in ("light", "dark")]
    with show(browser, site, frames, width=1790) as page:
        png = page.screenshot(tmp_path / "log.png")
        assert png.startswith(b"\x89PNG") and len(png) > 20_000
        if os.environ.get("UPDATE_SCREENSHOT") == "1":
            LOG_SCREENSHOT.write_bytes(png)


@in_chromium
def test_screenshot_light_and_dark(browser: Chromium, site: Site, live_api: RunningFakeRespan, tmp_path: Path) -> None:
    """Both themes side by side; `UPDATE_SCREENSHOT=1` writes it to docs/ for the README."""
    listed = listed_scores(live_api)
    result = with_evaluator_facts(listed, live_api.fake)
    frames = [{"result": result, "arguments": {"log_id": LOG_ID}, "context": {"theme": theme}, "width": 600}
              for theme in ("light", "dark")]
    with show(browser, site, frames, width=1250) as page:
        png = page.screenshot(tmp_path / "panel.png")
        assert png.startswith(b"\x89PNG") and len(png) > 20_000
        if os.environ.get("UPDATE_SCREENSHOT") == "1":
            SCREENSHOT.parent.mkdir(exist_ok=True)
            SCREENSHOT.write_bytes(png)
