"""An agent inside an OpenTelemetry span finds its own trace, over the installed console script.

The SDK's client sends the active span's W3C trace context as `_meta.traceparent` with every
request; the server reads the trace id from it. So inside a span, `find_logs` with
`current_trace: true` reaches Respan as a `trace_unique_id` filter and lists that trace's logs
(not another trace's), and `self_grade` without a log_id names the trace. Over stdio and over
streamable HTTP, with real clients and a real span (opentelemetry-sdk's TracerProvider, kept
local to the test: the process's global provider is left alone).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from opentelemetry.sdk.trace import TracerProvider

from tests.conftest import API_KEY, console_script, http_server, server_env
from tests.fake_api import FakeRespan, RunningFakeRespan

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

OTHER_TRACE = "5b8efff798038103d269b633813fc60c"


@asynccontextmanager
async def over_stdio(url: str) -> AsyncIterator[Client]:
    async with Client(StdioServerParameters(command=console_script(), env=server_env(url))) as client:
        yield client


@asynccontextmanager
async def over_streamable_http(url: str) -> AsyncIterator[Client]:
    with http_server("--transport", "streamable-http", env=server_env(url)) as (port, _process):
        async with httpx2.AsyncClient(timeout=60) as http:
            async with Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)) as client:
                yield client


@pytest.mark.parametrize("connect", [over_stdio, over_streamable_http], ids=["stdio", "streamable-http"])
async def test_inside_a_span_find_logs_and_self_grade_know_the_current_trace(
    api: RunningFakeRespan, fake: FakeRespan, connect: Callable[[str], AbstractAsyncContextManager[Client]]
) -> None:
    tracer = TracerProvider().get_tracer("the agent")
    async with connect(api.url) as client:
        with tracer.start_as_current_span("agent run") as span:
            trace = format(span.get_span_context().trace_id, "032x")
            fake.add_log("log-root", trace_unique_id=trace, span_name="agent run", custom_identifier="run-1")
            fake.add_log("log-tool", trace_unique_id=trace, span_name="search", span_parent_id="log-root")
            fake.add_log("log-elsewhere", trace_unique_id=OTHER_TRACE, span_name="agent run")
            found = await client.call_tool("find_logs", {"current_trace": True})
            prompt = await client.get_prompt("self_grade", {"evaluators": "quality"})
        outside = await client.call_tool("find_logs", {"current_trace": True})

    assert not found.is_error, found.content
    page: dict[str, Any] = found.structured_content or {}
    assert page["trace_unique_id"] == trace
    assert sorted(row["log_id"] for row in page["logs"]) == ["log-root", "log-tool"]
    lists = [r for r in fake.requests if r.path == "/api/request-logs/list/"]
    assert len(lists) == 1 and lists[0].body["filters"] == {"trace_unique_id": {"operator": "", "value": [trace]}}
    assert lists[0].headers["authorization"] == f"Bearer {API_KEY}"

    text = prompt.messages[0].content.text  # type: ignore[union-attr]
    assert f"this request came from trace {trace}" in text and "current_trace: true" in text
    assert f'trace_unique_id "{trace}"' in text and "try again a little later" in text

    # Outside the span the client sends no trace context: the tool says what to pass instead, sending nothing.
    assert outside.is_error and "traceparent" in outside.content[0].text  # type: ignore[union-attr]
    assert len([r for r in fake.requests if r.path == "/api/request-logs/list/"]) == 1
