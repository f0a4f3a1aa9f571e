"""The scores panel as the server offers it: a `ui://` resource tied to the tools that return scores.

A host that negotiated MCP Apps sees `_meta.ui.resourceUri` on those tools and can read the panel;
one that did not sees plain tools. Either way, a call returns the same text and structuredContent.
"""

from __future__ import annotations

import json

import pytest
from mcp import Client
from mcp.client.extension import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID

from respan_mcp.config import Config
from respan_mcp.panel import PANEL_TOOLS, PANEL_URI
from respan_mcp.server import build_server
from tests.conftest import API_KEY, LOG_ID
from tests.fake_api import RunningFakeRespan

pytestmark = pytest.mark.anyio

APPS = [advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})]
WRITE = {"log_id": LOG_ID, "evaluator_slug": "helpfulness", "numerical_value": 4}
LOG = {
    "span_name": "support.answer", "model": "gpt-4o", "input": "How do I reset my password?",
    "output": "Open Settings, then Security, then Reset. " * 200, "metadata": {"team": "support"},
}


async def test_a_host_with_apps_sees_the_panel_on_the_score_tools(api: RunningFakeRespan) -> None:
    async with Client(build_server(Config(api_key=API_KEY, base_url=api.url)), extensions=APPS) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        (resource,) = (await client.list_resources()).resources
        (content,) = (await client.read_resource(PANEL_URI)).contents
    assert {name for name, tool in tools.items() if tool.meta} == PANEL_TOOLS
    assert all(tools[name].meta == {"ui": {"resourceUri": PANEL_URI}} for name in PANEL_TOOLS)
    assert str(resource.uri) == PANEL_URI and resource.mime_type == APP_MIME_TYPE
    assert content.mime_type == APP_MIME_TYPE and content.text.lstrip().lower().startswith("<!doctype html")


async def test_the_server_advertises_the_apps_extension(api: RunningFakeRespan) -> None:
    async with Client(build_server(Config(api_key=API_KEY, base_url=api.url))) as client:
        capabilities = client.server_capabilities
    assert capabilities is not None and capabilities.extensions == {EXTENSION_ID: {}}


async def test_a_host_without_apps_sees_plain_tools_and_the_same_results(api: RunningFakeRespan) -> None:
    server = build_server(Config(api_key=API_KEY, base_url=api.url))
    async with Client(server) as plain:
        assert not any(tool.meta for tool in (await plain.list_tools()).tools)
        first = await plain.call_tool("upsert_log_score", WRITE)
    async with Client(server, extensions=APPS) as rendering:
        again = await rendering.call_tool("upsert_log_score", WRITE)
    assert not first.is_error and not again.is_error
    assert first.structured_content == again.structured_content  # the upsert answered the same score
    assert first.content[0].text == again.content[0].text


async def test_resource_templates_are_listed_empty_not_an_unknown_method(api: RunningFakeRespan) -> None:
    async with Client(build_server(Config(api_key=API_KEY, base_url=api.url))) as client:
        templates = await client.list_resource_templates()
    assert templates.resource_templates == []


async def test_reading_an_unknown_resource_is_an_error(api: RunningFakeRespan) -> None:
    async with Client(build_server(Config(api_key=API_KEY, base_url=api.url))) as client:
        with pytest.raises(Exception, match="Unknown resource"):
            await client.read_resource("ui://respan/elsewhere.html")


async def test_get_log_is_drawn_by_the_panel_only_for_hosts_with_apps(api: RunningFakeRespan) -> None:
    server = build_server(Config(api_key=API_KEY, base_url=api.url))
    async with Client(server, extensions=APPS) as rendering:
        shown = {tool.name: tool for tool in (await rendering.list_tools()).tools}
    async with Client(server) as plain:
        listed = {tool.name: tool for tool in (await plain.list_tools()).tools}
    assert "get_log" in PANEL_TOOLS
    assert shown["get_log"].meta == {"ui": {"resourceUri": PANEL_URI}}
    assert listed["get_log"].meta is None
    assert shown["find_logs"].meta is None  # a list of summaries: no panel


async def test_get_log_gives_every_host_the_same_log_as_text_and_structured_content(api: RunningFakeRespan) -> None:
    api.fake.add_log(LOG_ID, **LOG)
    server = build_server(Config(api_key=API_KEY, base_url=api.url))
    async with Client(server) as plain:
        assert not (await plain.call_tool("upsert_log_score", WRITE)).is_error
        first = await plain.call_tool("get_log", {"log_id": LOG_ID, "max_chars": 1000})
    async with Client(server, extensions=APPS) as rendering:
        again = await rendering.call_tool("get_log", {"log_id": LOG_ID, "max_chars": 1000})
    assert not first.is_error and not again.is_error
    log = first.structured_content
    assert log is not None and json.loads(first.content[0].text) == log  # the text is the structured log, whole
    assert (again.structured_content, again.content[0].text) == (log, first.content[0].text)
    assert log["span_name"] == "support.answer" and log["input"] == LOG["input"]
    assert log["output"] == LOG["output"][:1000] and log["cut"][0]["field"] == "output"
    assert [(score["evaluator"], score["value"]) for score in log["scores"]] == [("helpfulness", "4.0")]
