"""Serving over HTTP: whose key a call uses, Host/Origin checks, health endpoints, draining, JSON logs.

Each test starts the installed console script and drives it with the SDK's HTTP clients.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import API_KEY, LOG_ID, console_script, free_port, server_env, stop, wait_healthy
from tests.fake_api import FakeRespan, RunningFakeRespan

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

KEY_A, KEY_B = "key-of-caller-a", "key-of-caller-b"
WRITE = {"log_id": LOG_ID, "evaluator_slug": "helpfulness", "score_value_type": "numerical", "numerical_value": 4}


class Replica:
    """A running `respan-mcp` on an HTTP transport; its stderr goes to a file, read after it exits."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, stderr: Path) -> None:
        self.process, self.port, self._stderr = process, port, stderr
        self.url = f"http://127.0.0.1:{port}"

    def stderr(self) -> str:
        return self._stderr.read_text(errors="replace")


@contextmanager
def replica(
    tmp_path: Path,
    *args: str,
    env: dict[str, str],
    host: str = "127.0.0.1",
    port: int | None = None,
    launcher: tuple[str, ...] = (),
) -> Iterator[Replica]:
    """Start `respan-mcp` (bound to `host`, reached on 127.0.0.1; through `launcher`, a command that
    runs the rest, if given) and wait until /healthz answers."""
    port = port or free_port()
    stderr = tmp_path / f"replica-{port}.log"
    with stderr.open("wb") as sink:
        process = subprocess.Popen(
            [*launcher, console_script(), *args, "--host", host, "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    running = Replica(process, port, stderr)
    try:
        wait_healthy(f"{running.url}/healthz", process, running.stderr)
        yield running
    finally:
        stop(process)


@asynccontextmanager
async def mcp_client(url: str, transport: str = "streamable-http", **headers: str) -> AsyncIterator[Client]:
    if transport == "sse":
        async with Client(sse_client(f"{url}/sse", headers=headers)) as client:
            yield client
        return
    # The MCP transports' own timeouts (30 s, 300 s to read a held stream), on the public httpx2 client.
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0)) as http:
        async with Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client:
            yield client


@pytest.fixture
def fake(fake: FakeRespan) -> FakeRespan:
    """The API knows the server's key and two callers' own (conftest's `api` serves it)."""
    fake.api_keys |= {KEY_A, KEY_B}
    return fake


def bearers(fake: FakeRespan) -> list[str]:
    return [request.headers.get("authorization", "") for request in fake.requests]


# -- whose key a call uses ---------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["sse", "streamable-http"])
async def test_two_callers_each_write_with_their_own_key(
    transport: str, tmp_path: Path, api: RunningFakeRespan, fake: FakeRespan
) -> None:
    with replica(tmp_path, "--transport", transport, env=server_env(api.url)) as server:
        async with (
            mcp_client(server.url, transport, Authorization=f"Bearer {KEY_A}") as a,
            mcp_client(server.url, transport, Authorization=f"Bearer {KEY_B}") as b,
        ):
            first = await a.call_tool("upsert_log_score", WRITE)
            second = await b.call_tool("upsert_log_score", WRITE | {"numerical_value": 2})
            again = await a.call_tool("upsert_log_score", WRITE | {"numerical_value": 5})
    assert not first.is_error and not second.is_error and not again.is_error, (first, second, again)
    # Each key is its own scorer: two scores, each updated only by its own caller.
    assert first.structured_content["id"] == again.structured_content["id"] != second.structured_content["id"]
    assert [w.headers["authorization"] for w in fake.writes()] == [
        f"Bearer {KEY_A}",
        f"Bearer {KEY_B}",
        f"Bearer {KEY_A}",
    ]
    assert f"Bearer {API_KEY}" not in bearers(fake)  # the server's key was never used


async def test_anonymous_caller_uses_the_server_key_on_loopback_but_not_through_a_proxy(
    tmp_path: Path, api: RunningFakeRespan, fake: FakeRespan
) -> None:
    with replica(tmp_path, "--transport", "streamable-http", env=server_env(api.url)) as server:
        async with mcp_client(server.url) as client:
            local = await client.call_tool("upsert_log_score", WRITE)
        assert not local.is_error, local.content
        assert set(bearers(fake)) == {f"Bearer {API_KEY}"}
        fake.requests.clear()
        for header, value in [("X-Forwarded-For", "203.0.113.9"), ("Forwarded", "for=203.0.113.9")]:
            async with mcp_client(server.url, **{header: value}) as client:
                assert "upsert_log_score" in {tool.name for tool in (await client.list_tools()).tools}
                written = await client.call_tool("upsert_log_score", WRITE)
                read = await client.call_tool("list_log_scores", {"log_id": LOG_ID})
            assert written.is_error and read.is_error
            text = written.content[0].text
            assert "through a proxy" in text and "Authorization: Bearer <your Respan API key>" in text, text
        assert fake.requests == []  # nothing was sent to Respan
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
    assert "tool_call" not in server.stderr()  # text logs (the default) have no per-call lines


async def test_allow_server_key_lends_it_through_a_proxy(tmp_path: Path, api: RunningFakeRespan, fake: FakeRespan) -> None:
    env = server_env(api.url, RESPAN_ALLOW_SERVER_KEY="1")  # the flag is exercised through nginx in test_proxy
    with replica(tmp_path, "--transport", "streamable-http", env=env) as server:
        async with mcp_client(server.url, **{"X-Forwarded-For": "203.0.113.9"}) as client:
            written = await client.call_tool("upsert_log_score", WRITE)
            read = await client.call_tool("list_log_scores", {"log_id": LOG_ID})
    assert not written.is_error and not read.is_error, (written, read)
    assert set(bearers(fake)) == {f"Bearer {API_KEY}"}


@pytest.mark.parametrize("transport", ["sse", "streamable-http"])
async def test_a_network_bind_refuses_anonymous_callers_and_says_so_at_start(
    transport: str, tmp_path: Path, api: RunningFakeRespan, fake: FakeRespan
) -> None:
    with replica(tmp_path, "--transport", transport, env=server_env(api.url), host="0.0.0.0") as server:
        # Reached as 127.0.0.1: on a network bind the Host header is not checked (its names cannot be known).
        async with mcp_client(server.url, transport) as anonymous:
            refused = await anonymous.call_tool("upsert_log_score", WRITE)
        assert fake.requests == []
        async with mcp_client(server.url, transport, Authorization=f"Bearer {KEY_A}") as keyed:
            written = await keyed.call_tool("upsert_log_score", WRITE)
        notice = server.stderr()
    assert refused.is_error
    assert "only to callers on its own machine" in refused.content[0].text
    assert "Authorization: Bearer <your Respan API key>" in refused.content[0].text
    assert not written.is_error, written.content
    assert set(bearers(fake)) == {f"Bearer {KEY_A}"}
    assert "0.0.0.0, which is not a loopback address" in notice and "Authorization: Bearer" in notice
    assert API_KEY not in notice


async def test_without_a_server_key_an_anonymous_caller_is_refused(
    tmp_path: Path, api: RunningFakeRespan, fake: FakeRespan
) -> None:
    env = {"PATH": "", "HOME": str(tmp_path), "RESPAN_BASE_URL": api.url}  # no key, no credentials file
    with replica(tmp_path, "--transport", "streamable-http", env=env) as server:
        async with mcp_client(server.url) as anonymous:
            refused = await anonymous.call_tool("upsert_log_score", WRITE)
        async with mcp_client(server.url, Authorization=f"Bearer {KEY_B}") as keyed:
            written = await keyed.call_tool("upsert_log_score", WRITE)
    assert refused.is_error and "has no Respan API key of its own" in refused.content[0].text
    assert not written.is_error, written.content
    assert bearers(fake) == [f"Bearer {KEY_B}"] * len(fake.requests)


@pytest.mark.parametrize("transport", ["sse", "streamable-http"])
async def test_foreign_host_and_origin_are_refused_and_health_needs_no_key(
    transport: str, tmp_path: Path, api: RunningFakeRespan, fake: FakeRespan
) -> None:
    env = {"PATH": "", "HOME": str(tmp_path), "RESPAN_BASE_URL": api.url}  # no key at all
    with replica(tmp_path, "--transport", transport, env=env) as server:
        path = "/sse" if transport == "sse" else "/mcp"
        initialize = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
        }

        async def status(**headers: str) -> int:
            headers = {"Accept": "application/json, text/event-stream", **headers}
            async with httpx2.AsyncClient(base_url=server.url, timeout=10) as http:
                if transport == "sse":  # the stream would stay open: read the status line only
                    async with http.stream("GET", path, headers=headers) as response:
                        return response.status_code
                return (await http.post(path, json=initialize, headers=headers)).status_code

        assert await status(Host="evil.example") == 421
        assert await status(Host="evil.example:80") == 421
        assert await status(Origin="http://evil.example") == 403
        assert await status() == 200  # the same request, from where it should come, is served
        assert await status(Origin=f"http://localhost:{server.port}") == 200

        async with httpx2.AsyncClient(base_url=server.url, timeout=10) as http:
            health = await http.get("/healthz")
            ready = await http.get("/readyz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    assert fake.requests == []


# -- draining ------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["sse", "streamable-http"])
async def test_sigterm_lets_a_slow_call_finish_and_exits_0(
    transport: str, tmp_path: Path, api: RunningFakeRespan, fake: FakeRespan
) -> None:
    with replica(tmp_path, "--transport", transport, env=server_env(api.url)) as server:
        async with mcp_client(server.url, transport) as client:
            first = await client.call_tool("upsert_log_score", WRITE)
            score_id = first.structured_content["id"]
            fake.requests.clear()
            release = fake.hold()  # the next call stays in flight until the drain has been seen
            answers: list = []

            async def slow_update() -> None:
                update = {"score_id": score_id, "score_value_type": "numerical", "numerical_value": 1}
                answers.append(await client.call_tool("update_score", update))

            async with anyio.create_task_group() as group:
                group.start_soon(slow_update)
                with anyio.fail_after(30):
                    while not fake.requests:  # the call reached Respan: it is in flight
                        await anyio.sleep(0.02)
                server.process.send_signal(signal.SIGTERM)
                async with httpx2.AsyncClient(base_url=server.url, timeout=10) as http:
                    with anyio.fail_after(30):
                        while (ready := await http.get("/readyz")).status_code == 200:
                            await anyio.sleep(0.02)
                    health = await http.get("/healthz")
                    refused = await http.post("/mcp", json={}, headers={"Accept": "application/json, text/event-stream"})
                assert not answers  # still in flight while /readyz says draining
                release.set()
                assert (ready.status_code, ready.json()) == (503, {"status": "draining"})
                assert health.status_code == 200
                if transport == "streamable-http":  # new work goes elsewhere: a proxy retries a 503
                    assert refused.status_code == 503 and "shutting down" in refused.text
        assert not answers[0].is_error, answers[0].content
        assert answers[0].structured_content["numerical_value"] == 1
        assert server.process.wait(timeout=30) == 0
    assert "Traceback" not in server.stderr()
    assert fake.scores[score_id]["numerical_value"] == 1


async def test_stateless_get_mcp_is_405_so_no_idle_stream_holds_shutdown(
    tmp_path: Path, api: RunningFakeRespan
) -> None:
    """A stateless server has nothing to stream: GET /mcp answers 405 at once (the spec allows it),
    so idle streams neither pile up descriptors nor delay the drain."""
    with replica(tmp_path, "--transport", "streamable-http", env=server_env(api.url)) as server:
        async with httpx2.AsyncClient(base_url=server.url, timeout=10) as http:
            answers = [await http.get("/mcp", headers={"Accept": "text/event-stream"}) for _ in range(20)]
        assert {(a.status_code, a.headers.get("allow")) for a in answers} == {(405, "POST")}
        async with mcp_client(server.url, "streamable-http") as client:  # the SDK's client takes the 405 in stride
            assert not (await client.call_tool("upsert_log_score", WRITE)).is_error
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0  # a failure bound: nothing is left to wait for


# -- logs ----------------------------------------------------------------------------------------


async def test_json_log_has_one_line_per_call_without_key_or_values(
    tmp_path: Path, api: RunningFakeRespan, fake: FakeRespan
) -> None:
    verdict = "the-answer-was-carefully-reasoned"
    env = server_env(api.url, RESPAN_LOG_FORMAT="json")
    with replica(tmp_path, "--transport", "streamable-http", env=env) as server:
        async with mcp_client(server.url, **{"X-Request-ID": "req-from-proxy-1"}) as client:
            ok = await client.call_tool(
                "upsert_log_score", {"log_id": LOG_ID, "evaluator_slug": "notes", "string_value": verdict}
            )
            missing = await client.call_tool(
                "upsert_log_score", {"log_id": "no-such-log", "evaluator_slug": "notes", "numerical_value": 4.375}
            )
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
        log = server.stderr()
    assert not ok.is_error and missing.is_error
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]  # every line is JSON
    calls = [line for line in lines if line.get("event") == "tool_call"]
    assert [(c["tool"], c["outcome"], c["respan_status"]) for c in calls] == [
        ("upsert_log_score", "ok", 201),
        ("upsert_log_score", "error", 404),
    ]
    assert all(c["request_id"] == "req-from-proxy-1" and c["duration_ms"] >= 0 for c in calls)
    assert calls[1]["error"] == "NotFoundError"
    assert API_KEY not in log and verdict not in log and "4.375" not in log


def test_help_documents_every_serving_flag_and_variable() -> None:
    text = subprocess.run([console_script(), "--help"], capture_output=True, text=True, check=True).stdout
    for name in ("--allow-server-key", "--log-format", "RESPAN_ALLOW_SERVER_KEY", "RESPAN_LOG_FORMAT", "--host"):
        assert name in text
