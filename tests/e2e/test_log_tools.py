"""find_logs and get_log through the installed server, over stdio and streamable HTTP, with the SDK's client.

What the agent sees (the tool result) and what reached the loopback stand-in (path, filter body, whose key)
are both asserted: the in-process tests in tests/server/test_logs.py pin the wording; these pin the whole path.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import API_KEY, console_script, http_server, server_env
from tests.fake_api import FakeRespan, RunningFakeRespan

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

TRANSPORTS = ["stdio", "streamable-http"]
CALLER_KEY = "key-of-the-caller-over-http"
LIST = "/api/request-logs/list/"
PEAK_RSS_LIMIT = 250 * 1024 * 1024
ANSWER_LIMIT = 200_000


@asynccontextmanager
async def connect(transport: str, api_url: str, **headers: str) -> AsyncIterator[tuple[Client, int | None]]:
    """The SDK's client on the installed server, and the server's pid where this test started it (HTTP)."""
    env = server_env(api_url)
    if transport == "stdio":
        async with Client(StdioServerParameters(command=console_script(), env=env)) as client:
            yield client, None
        return
    with http_server("--transport", transport, env=env) as (port, process):
        async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0)) as http:
            async with Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)) as client:
                yield client, process.pid


def stdio_server_pid() -> int:
    """The one `respan-mcp` child of this test process (the stdio client started it)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and b"respan-mcp" in cmdline:
            children.append(int(stat.parent.name))
    assert len(children) == 1, children
    return children[0]


def peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")


def list_requests(fake: FakeRespan) -> list[Any]:
    return [request for request in fake.requests if request.path == LIST]


def seed_tickets(fake: FakeRespan) -> None:
    fake.add_log("log-a", custom_identifier="ticket-42", span_name="support.answer", input="Reset?", output="Open Settings.")
    fake.add_log("log-b", custom_identifier="ticket-42", span_name="support.followup")
    fake.add_log("log-c", custom_identifier="ticket-7", span_name="support.answer")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_find_logs_by_custom_identifier_finds_exactly_that_tickets_logs(
    transport: str, api: RunningFakeRespan, fake: FakeRespan
) -> None:
    seed_tickets(fake)
    async with connect(transport, api.url) as (client, _):
        result = await client.call_tool("find_logs", {"custom_identifier": "ticket-42"})
    assert not result.is_error, result.content
    assert {row["log_id"] for row in result.structured_content["logs"]} == {"log-a", "log-b"}
    assert all("input" not in row and "output" not in row for row in result.structured_content["logs"])
    (request,) = list_requests(fake)
    assert request.method == "POST"
    assert request.body == {"filters": {"custom_identifier": {"operator": "", "value": ["ticket-42"]}}, "operator": "AND"}
    assert request.headers["authorization"] == f"Bearer {API_KEY}"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_bad_time_or_an_oversized_page_is_refused_before_any_request(
    transport: str, api: RunningFakeRespan, fake: FakeRespan
) -> None:
    async with connect(transport, api.url) as (client, _):
        for arguments, named in (({"start_time": "yesterday"}, "start_time"), ({"page_size": 51}, "page_size")):
            result = await client.call_tool("find_logs", {"custom_identifier": "ticket-42", **arguments})
            assert result.is_error and named in result.content[0].text, result.content
            assert "Nothing was sent" in result.content[0].text
    assert list_requests(fake) == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_get_log_shows_what_the_run_was_asked_and_answered_and_the_scores_on_it(
    transport: str, api: RunningFakeRespan, fake: FakeRespan
) -> None:
    seed_tickets(fake)
    async with connect(transport, api.url) as (client, _):
        written = await client.call_tool(
            "upsert_log_score", {"log_id": "log-a", "evaluator_slug": "helpfulness", "numerical_value": 4}
        )
        assert not written.is_error, written.content
        result = await client.call_tool("get_log", {"log_id": "log-a"})
        unknown = await client.call_tool("get_log", {"log_id": "log-404"})
    assert not result.is_error, result.content
    log = result.structured_content
    assert (log["input"], log["output"]) == ("Reset?", "Open Settings.")
    (score,) = log["scores"]
    assert score["evaluator"] == "helpfulness" and float(score["value"]) == 4
    assert json.loads(result.content[0].text) == log  # hosts without structured content read the same
    assert unknown.is_error and "log-404" in unknown.content[0].text


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_30_mb_log_answers_small_and_the_server_stays_under_250_mb(
    transport: str, api: RunningFakeRespan, fake: FakeRespan
) -> None:
    fake.add_log("log-huge", input="q" * 1_000_000, output="x" * 30_000_000)
    async with connect(transport, api.url) as (client, pid):
        result = await client.call_tool("get_log", {"log_id": "log-huge"})
        peak = peak_rss(pid or stdio_server_pid())
    assert not result.is_error, result.content[0].text[:300]
    assert len(result.content[0].text.encode()) < ANSWER_LIMIT
    cuts = {cut["field"]: cut for cut in result.structured_content["cut"]}
    assert cuts["output"]["length"] == 30_000_000 and "offset" in cuts["output"]["read_on"]
    assert peak < PEAK_RSS_LIMIT, f"peak RSS {peak / 2**20:.0f} MiB"


async def test_over_http_the_logs_are_read_with_the_callers_key(api: RunningFakeRespan, fake: FakeRespan) -> None:
    fake.api_keys.add(CALLER_KEY)
    seed_tickets(fake)
    async with connect("streamable-http", api.url, Authorization=f"Bearer {CALLER_KEY}") as (client, _):
        found = await client.call_tool("find_logs", {"custom_identifier": "ticket-7"})
        read = await client.call_tool("get_log", {"log_id": "log-c"})
    assert not found.is_error and not read.is_error, (found.content, read.content)
    reads = [r for r in fake.requests if r.path in (LIST, "/api/request-logs/log-c/")]
    assert [r.path for r in reads] == [LIST, "/api/request-logs/log-c/"]
    assert {r.headers["authorization"] for r in reads} == {f"Bearer {CALLER_KEY}"}
