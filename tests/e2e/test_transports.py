"""The installed server, started as a subprocess, driven by the SDK's client over every transport,
against the loopback stand-in of the Respan API."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client

from tests.conftest import API_KEY, LOG_ID, console_script, http_server, server_env
from tests.fake_api import FakeRespan, RunningFakeRespan

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

TRANSPORTS = ["stdio", "sse", "streamable-http"]


@asynccontextmanager
async def connect(transport: str, api_url: str, command: list[str] | None = None) -> AsyncIterator[Client]:
    env = server_env(api_url)
    if transport == "stdio":
        command = command or [console_script()]
        params = StdioServerParameters(command=command[0], args=command[1:], env=env)
        async with Client(params) as client:
            yield client
        return
    with http_server("--transport", transport, env=env) as (port, _):
        if transport == "sse":
            async with Client(sse_client(f"http://127.0.0.1:{port}/sse")) as client:
                yield client
        else:
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                yield client


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_write_then_update_reaches_the_api(transport: str, api: RunningFakeRespan, fake: FakeRespan) -> None:
    async with connect(transport, api.url) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"upsert_log_score", "update_score"} <= names

        written = await client.call_tool(
            "upsert_log_score",
            {"log_id": LOG_ID, "evaluator_slug": "helpfulness", "score_value_type": "numerical", "numerical_value": 4},
        )
        assert not written.is_error, written.content
        score_id = written.structured_content["id"]
        assert written.structured_content["numerical_value"] == 4

        again = await client.call_tool(
            "upsert_log_score", {"log_id": LOG_ID, "evaluator_slug": "helpfulness", "numerical_value": 5}
        )
        assert again.structured_content["id"] == score_id  # upsert: the same score, updated

        updated = await client.call_tool("update_score", {"score_id": score_id, "numerical_value": 3})
        assert not updated.is_error, updated.content
        assert updated.structured_content["numerical_value"] == 3

    post, repost, patch = fake.writes()
    assert (post.method, post.path) == ("POST", f"/api/logs/{LOG_ID}/scores/")
    assert post.body == {"evaluator_slug": "helpfulness", "numerical_value": 4.0}
    assert post.headers["authorization"] == f"Bearer {API_KEY}"
    assert post.headers["user-agent"].startswith("respan-mcp/")
    assert (patch.method, patch.path, patch.body) == ("PATCH", f"/api/scores/{score_id}/", {"numerical_value": 3.0})
    assert fake.scores[score_id]["numerical_value"] == 3


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_errors_reach_the_agent_as_tool_errors(transport: str, api: RunningFakeRespan, fake: FakeRespan) -> None:
    async with connect(transport, api.url) as client:
        wrong = await client.call_tool(
            "upsert_log_score",
            {"log_id": LOG_ID, "evaluator_slug": "q", "score_value_type": "boolean", "numerical_value": 1},
        )
        assert wrong.is_error
        assert "score_value_type 'boolean' takes boolean_value, not numerical_value" in wrong.content[0].text
        assert fake.requests == []

        missing = await client.call_tool(
            "upsert_log_score", {"log_id": "no-such-log", "evaluator_slug": "q", "numerical_value": 1}
        )
        assert missing.is_error and "Log not found" in missing.content[0].text
        assert "no-such-log" in missing.content[0].text


async def test_bad_key_is_a_clear_tool_error(fake: FakeRespan) -> None:
    with RunningFakeRespan(FakeRespan(api_keys=("some-other-key",))) as other:
        async with connect("stdio", other.url) as client:
            result = await client.call_tool("upsert_log_score", {"log_id": LOG_ID, "evaluator_slug": "q", "numerical_value": 1})
    assert result.is_error and "rejected the API key" in result.content[0].text
    assert API_KEY not in result.content[0].text


async def test_python_dash_m_is_the_same_server(api: RunningFakeRespan, fake: FakeRespan) -> None:
    async with connect("stdio", api.url, command=[sys.executable, "-m", "respan_mcp"]) as client:
        result = await client.call_tool("upsert_log_score", {"log_id": LOG_ID, "evaluator_id": None, "evaluator_slug": "q", "boolean_value": True})
    assert not result.is_error, result.content
    assert fake.writes()[0].body == {"evaluator_slug": "q", "boolean_value": True}


@pytest.mark.parametrize("base", ["{url}", "{url}/", "{url}/api", "{url}/api/"])
@pytest.mark.parametrize("variable", ["RESPAN_BASE_URL", "RESPAN_API_BASE_URL"])
async def test_both_base_url_conventions(variable: str, base: str, api: RunningFakeRespan, fake: FakeRespan) -> None:
    env = {"PATH": "", "RESPAN_API_KEY": API_KEY, variable: base.format(url=api.url)}
    params = StdioServerParameters(command=console_script(), args=[], env=env)
    async with Client(params) as client:
        result = await client.call_tool("upsert_log_score", {"log_id": LOG_ID, "evaluator_slug": "q", "numerical_value": 1})
    assert not result.is_error, result.content
    assert fake.writes()[0].path == f"/api/logs/{LOG_ID}/scores/"


async def test_without_any_key_tools_list_and_a_call_explains(tmp_path, api: RunningFakeRespan, fake: FakeRespan) -> None:
    env = {"PATH": "", "HOME": str(tmp_path), "RESPAN_BASE_URL": api.url}  # no key, no credentials file
    async with Client(StdioServerParameters(command=console_script(), args=[], env=env)) as client:
        assert len((await client.list_tools()).tools) >= 2
        result = await client.call_tool("upsert_log_score", {"log_id": LOG_ID, "evaluator_slug": "q", "numerical_value": 1})
    assert result.is_error
    assert "RESPAN_API_KEY" in result.content[0].text and "respan login" in result.content[0].text
    assert fake.requests == []


async def test_key_from_the_credentials_file(tmp_path, api: RunningFakeRespan, fake: FakeRespan) -> None:
    (tmp_path / ".respan").mkdir()
    (tmp_path / ".respan" / "credentials.json").write_text(
        json.dumps({"default": {"type": "api_key", "apiKey": API_KEY, "baseUrl": api.url + "/api"}})
    )
    env = {"PATH": "", "HOME": str(tmp_path)}
    async with Client(StdioServerParameters(command=console_script(), args=[], env=env)) as client:
        result = await client.call_tool("upsert_log_score", {"log_id": LOG_ID, "evaluator_slug": "q", "numerical_value": 1})
    assert not result.is_error, result.content
    assert fake.writes()[0].headers["authorization"] == f"Bearer {API_KEY}"
