"""Graceful shutdown over stdio: a call in flight when the host sends SIGTERM or SIGINT, or closes
stdin, still gets its answer, and the process exits 0 without a traceback; a second signal stops at
once; `serve_stdio`'s `on_stop` runs when reading stops, before the answers are waited for.

The MCP messages are written by hand here, because the test needs the server's pid for signals.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from respan_mcp.config import SHUTDOWN_GRACE
from tests.conftest import console_script, server_env
from tests.fake_api import FakeRespan, RunningFakeRespan

pytestmark = pytest.mark.slow

LATE_SCORE = {"id": "score_late", "created_at": "2026-11-24T00:00:00Z", "log_id": "log-1", "numerical_value": 4.0}


class StdioServer:
    """The console script with pipes; responses are read on a thread so a wait can time out."""

    def __init__(self, env: dict[str, str], command: list[str] | None = None) -> None:
        self.process = subprocess.Popen(
            command or [console_script()], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self._lines: queue.Queue[bytes] = queue.Queue()
        self._said: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._stderr = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr.start()
        self.request(1, "initialize", {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"},
        })
        assert "result" in self.answer(1)
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def _read(self) -> None:
        for line in self.process.stdout:  # type: ignore[union-attr]
            self._lines.put(line)

    def _read_stderr(self) -> None:
        for line in self.process.stderr:  # type: ignore[union-attr]
            self._said.put(line)

    def wait_for_stderr(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self._said.get(timeout=max(0.01, deadline - time.monotonic())):
            pass

    def send(self, message: dict[str, Any]) -> None:
        self.process.stdin.write(json.dumps(message).encode() + b"\n")  # type: ignore[union-attr]
        self.process.stdin.flush()  # type: ignore[union-attr]

    def request(self, id: int, method: str, params: dict[str, Any]) -> None:
        self.send({"jsonrpc": "2.0", "id": id, "method": method, "params": params})

    def answer(self, id: int, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self._lines.get(timeout=max(0.01, deadline - time.monotonic())))
            if message.get("id") == id:
                return message

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        """Exit code and stderr, once the process has ended by itself."""
        code = self.process.wait(timeout=timeout)
        self._stderr.join(timeout=60)
        return code, b"".join(self._said.queue).decode()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def server(fake: FakeRespan) -> Iterator[StdioServer]:
    with RunningFakeRespan(fake) as api:
        # JSON logs at INFO: the line saying the first signal was taken is something to wait on.
        started = StdioServer(server_env(api.url, RESPAN_LOG_FORMAT="json", RESPAN_LOG_LEVEL="INFO"))
        try:
            yield started
        finally:
            started.kill()


def call_in_flight(server: StdioServer, fake: FakeRespan) -> threading.Event:
    """Start a write that the API holds until the returned event is set; return once the API has it."""
    release = fake.hold("POST")
    fake.fail_next(201, LATE_SCORE, method="POST")
    server.request(2, "tools/call", {
        "name": "upsert_log_score",
        "arguments": {"log_id": "log-1", "evaluator_slug": "q", "numerical_value": 4},
    })
    deadline = time.monotonic() + 60
    while not any(r.method == "POST" for r in fake.requests):
        assert time.monotonic() < deadline, "the write never reached the API"
        time.sleep(0.01)
    return release


def assert_answered(server: StdioServer) -> None:
    answer = server.answer(2)
    assert "result" in answer, answer
    assert not answer["result"].get("isError"), answer
    assert answer["result"]["structuredContent"]["id"] == "score_late"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_lets_the_call_in_flight_answer_then_exits_0(signum: int, server: StdioServer, fake: FakeRespan) -> None:
    release = call_in_flight(server, fake)
    server.process.send_signal(signum)
    server.wait_for_stderr("a second signal stops at once")  # the signal is taken with the write still held
    release.set()
    assert_answered(server)
    code, stderr = server.finish()
    assert code == 0, stderr
    assert "Traceback" not in stderr


def test_stdin_eof_lets_the_call_in_flight_answer_then_exits_0(server: StdioServer, fake: FakeRespan) -> None:
    release = call_in_flight(server, fake)
    server.process.stdin.close()  # type: ignore[union-attr]
    release.set()  # the end of input came first: the answer can only follow it
    assert_answered(server)
    code, stderr = server.finish()
    assert code == 0, stderr
    assert "Traceback" not in stderr


def test_a_call_sent_just_before_stdin_eof_is_answered(server: StdioServer, fake: FakeRespan) -> None:
    server.request(2, "tools/call", {
        "name": "upsert_log_score",
        "arguments": {"log_id": "log-1", "evaluator_slug": "q", "numerical_value": 4},
    })
    server.process.stdin.close()  # type: ignore[union-attr]
    answer = server.answer(2)
    assert not answer["result"].get("isError"), answer
    code, stderr = server.finish()
    assert code == 0 and "Traceback" not in stderr, stderr


def test_sigterm_during_a_long_batch_still_reports_every_item(fake: FakeRespan) -> None:
    """The batch's deadline shrinks to fit the grace: the agent learns what was written, the rest deferred."""
    fake.latency = 0.2  # 400 items, two at a time: about 40 s of writes, far past the grace
    fake.accept_any_log = True
    items = [{"log_id": f"log-{i}", "evaluator_slug": "helpfulness", "numerical_value": 1} for i in range(400)]
    with RunningFakeRespan(fake) as api:
        server = StdioServer(server_env(api.url, RESPAN_MAX_CONCURRENCY="2", RESPAN_BATCH_DEADLINE="600"))
        try:
            server.request(2, "tools/call", {"name": "upsert_log_scores", "arguments": {"scores": items}})
            deadline = time.monotonic() + 60
            while len(fake.scores) < 4:  # the batch is writing
                assert time.monotonic() < deadline, "the batch never wrote"
                time.sleep(0.01)
            server.process.send_signal(signal.SIGTERM)
            answer = server.answer(2, timeout=SHUTDOWN_GRACE * 3)  # a failure bound only
            code, stderr = server.finish()
        finally:
            server.kill()
    report = answer["result"]["structuredContent"]
    assert not answer["result"].get("isError"), answer
    assert report["written"] + report["deferred"] + report["failed"] == 400 and report["deferred"] > 0
    assert report["written"] == len(fake.scores)  # every write the API took is reported as written
    assert "shutting down" in report["next_step"]
    assert code == 0 and "Traceback" not in stderr, stderr


@pytest.mark.slow  # the stand-in API still holds the write when its thread is stopped
def test_a_second_signal_stops_at_once_and_exits_0(server: StdioServer, fake: FakeRespan) -> None:
    release = call_in_flight(server, fake)  # held past the end: a graceful end would wait out SHUTDOWN_GRACE
    server.process.send_signal(signal.SIGTERM)
    server.wait_for_stderr("a second signal stops at once")  # two signals sent at once would merge into one
    server.process.send_signal(signal.SIGTERM)
    code, stderr = server.finish(timeout=SHUTDOWN_GRACE * 3 / 4)  # a failure bound, below the grace
    release.set()
    assert code == 0, stderr
    assert "Traceback" not in stderr


# The public low-level Server, served by serve_stdio; its one tool answers only once on_stop has run.
ON_STOP_SERVER = textwrap.dedent("""
    import anyio
    from mcp.server.lowlevel import Server
    from mcp.types import CallToolResult, TextContent
    from respan_mcp.serve_stdio import serve_stdio

    async def main() -> None:
        stopped, calls = anyio.Event(), []

        def on_stop() -> None:
            calls.append(1)
            stopped.set()

        async def call_tool(ctx, params):
            await stopped.wait()
            return CallToolResult(content=[TextContent(type="text", text=f"on_stop ran {len(calls)} time(s)")])

        await serve_stdio(Server("on-stop", on_call_tool=call_tool), on_stop=on_stop)

    anyio.run(main)
""")


@pytest.mark.parametrize("end", ["eof", "SIGTERM"])
def test_on_stop_runs_once_when_reading_stops_before_the_answers_are_waited_for(end: str) -> None:
    server = StdioServer({"PATH": ""}, command=[sys.executable, "-c", ON_STOP_SERVER])
    try:
        server.request(2, "tools/call", {"name": "wait", "arguments": {}})
        if end == "eof":
            server.process.stdin.close()  # type: ignore[union-attr]
        else:
            server.process.send_signal(signal.SIGTERM)
        # Were on_stop run only after the wait for answers, this call would end with the grace.
        answer = server.answer(2, timeout=SHUTDOWN_GRACE * 3 / 4)
        assert answer["result"]["content"][0]["text"] == "on_stop ran 1 time(s)", answer
        code, stderr = server.finish()
        assert code == 0 and "Traceback" not in stderr, stderr
    finally:
        server.kill()
