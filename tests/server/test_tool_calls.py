"""The tools as an agent sees them, in-process through the SDK's own Client."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
from mcp import Client

from respan_mcp.config import Config
from respan_mcp.server import build_server
from respan_mcp.values import VALUE_FIELD_FOR_TYPE, VALUE_FIELDS
from tests.unit.test_models import VALUES, assert_flat

pytestmark = pytest.mark.anyio


KEY = "sk-canary-server-51c2"
SCORE = {"id": "score_1", "created_at": "2026-11-24T00:00:00Z", "numerical_value": 4.0, "boolean_value": None}


class MockAPI(httpx2.MockTransport):
    """A Respan API that answers every write with one canned answer, and keeps the requests."""

    def __init__(self, status: int = 201, body: Any = SCORE) -> None:
        self.requests: list[httpx2.Request] = []
        self.status, self.body = status, body
        super().__init__(self._answer)

    def _answer(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        if request.method == "GET" and request.url.path == "/api/evaluators/":
            return httpx2.Response(200, json={"count": 0, "next": None, "previous": None, "results": []})
        return httpx2.Response(self.status, json=self.body)

    @property
    def writes(self) -> list[httpx2.Request]:
        return [r for r in self.requests if r.method in ("POST", "PATCH")]


@pytest.fixture
def mock_api() -> MockAPI:
    return MockAPI()


@pytest.fixture
def mcp_transport(mock_api: MockAPI) -> MockAPI:
    """Here the server's API is `mock_api`, which answers every write alike."""
    return mock_api


@pytest.fixture
def mcp_settings() -> dict[str, Any]:
    return {"api_key": KEY}


async def test_lists_every_tool_with_titles_annotations_and_flat_schemas(mcp: Client) -> None:
    tools = {tool.name: tool for tool in (await mcp.list_tools()).tools}
    assert set(tools) == {
        "upsert_log_score", "update_score", "upsert_log_scores", "list_evaluators", "get_evaluator", "list_log_scores",
        "get_score", "find_logs", "get_log",
    }
    for tool in tools.values():
        assert tool.title and tool.description
        assert tool.annotations.idempotent_hint is True
        assert tool.annotations.destructive_hint is False
        assert tool.annotations.open_world_hint is True
        assert tool.annotations.read_only_hint is tool.name.startswith(("list_", "get_", "find_"))
        assert_flat(tool.input_schema)
        assert_flat(tool.output_schema)
    assert tools["upsert_log_score"].input_schema["required"] == ["log_id"]
    assert tools["update_score"].input_schema["required"] == ["score_id"]


async def test_upsert_reaches_api_and_returns_structured_score(mcp: Client, mock_api: MockAPI) -> None:
    result = await mcp.call_tool(
        "upsert_log_score", {"log_id": "log-1", "evaluator_slug": "quality", "numerical_value": 4}
    )
    assert not result.is_error
    assert result.structured_content == {"id": "score_1", "created_at": "2026-11-24T00:00:00Z", "numerical_value": 4.0}
    assert json.loads(result.content[0].text)["id"] == "score_1"
    (request,) = mock_api.writes
    assert (request.method, request.url.raw_path) == ("POST", b"/api/logs/log-1/scores/")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert json.loads(request.content) == {"evaluator_slug": "quality", "numerical_value": 4.0}


async def test_update_sends_only_the_value(mcp: Client, mock_api: MockAPI) -> None:
    result = await mcp.call_tool("update_score", {"score_id": "score_1", "score_value_type": "boolean", "boolean_value": False})
    assert not result.is_error
    (request,) = mock_api.requests  # the type was given, so the score is not read first
    assert (request.method, request.url.raw_path) == ("PATCH", b"/api/scores/score_1/")
    assert json.loads(request.content) == {"boolean_value": False}


WRONG_PAIRINGS = [
    (value_type, expected, wrong)
    for value_type, expected in sorted(VALUE_FIELD_FOR_TYPE.items())
    for wrong in VALUE_FIELDS
    if wrong != expected
]


@pytest.mark.parametrize("tool", ["upsert_log_score", "update_score"])
@pytest.mark.parametrize("value_type, expected, wrong", WRONG_PAIRINGS)
async def test_wrong_pairing_sends_no_request(
    mcp: Client, mock_api: MockAPI, tool: str, value_type: str, expected: str, wrong: str
) -> None:
    target = {"log_id": "log-1", "evaluator_slug": "q"} if tool == "upsert_log_score" else {"score_id": "s1"}
    result = await mcp.call_tool(tool, target | {"score_value_type": value_type, wrong: VALUES[wrong]})
    assert result.is_error
    assert f"score_value_type '{value_type}' takes {expected}, not {wrong}" in result.content[0].text
    assert "Nothing was sent" in result.content[0].text
    assert mock_api.requests == []


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({}, "no score value given"),
        ({"numerical_value": 1, "string_value": "x"}, "exactly one value field"),
        ({"numerical_value": "abc"}, "numerical_value: input should be a valid number"),
        ({"numerical_value": 1, "colour": "red"}, "colour is not an argument"),
        ({"categorical_value": [], "score_value_type": "multi_select"}, "at least one choice"),
        ({"json_value": "{oops", "score_value_type": "json"}, "valid JSON text"),
        ({"numerical_value": 1, "evaluator_id": "evl_1"}, "exactly one of evaluator_id or evaluator_slug"),
        ({"numerical_value": 1, "log_id": ""}, "log_id"),
    ],
)
async def test_invalid_arguments_are_tool_errors_and_send_nothing(
    mcp: Client, mock_api: MockAPI, arguments: dict, message: str
) -> None:
    result = await mcp.call_tool("upsert_log_score", {"log_id": "log-1", "evaluator_slug": "q"} | arguments)
    assert result.is_error and message in result.content[0].text
    assert "pydantic" not in result.content[0].text
    assert mock_api.requests == []


async def test_arrays_and_objects_sent_as_json_text_are_accepted(mcp: Client, mock_api: MockAPI) -> None:
    result = await mcp.call_tool(
        "upsert_log_score",
        {"log_id": "l", "evaluator_slug": "q", "score_value_type": "single_select", "categorical_value": '["good"]'},
    )
    assert not result.is_error, result.content
    assert json.loads(mock_api.writes[-1].content)["categorical_value"] == ["good"]
    result = await mcp.call_tool("upsert_log_score", {"log_id": "l", "evaluator_slug": "q", "json_value": '{"a": 1}'})
    assert not result.is_error
    assert json.loads(json.loads(mock_api.writes[-1].content)["json_value"]) == {"a": 1}


@pytest.mark.parametrize("text", ["null", "true", "3", '{"a":1}', "[1, 2]", '"x"'])
async def test_json_value_text_is_sent_as_given(mcp: Client, mock_api: MockAPI, text: str) -> None:
    # JSON text is the score itself: "null" is a valid json score, not a missing one.
    result = await mcp.call_tool("upsert_log_score", {"log_id": "l", "evaluator_slug": "q", "json_value": text})
    assert not result.is_error, result.content
    assert json.loads(mock_api.writes[-1].content)["json_value"] == text


async def test_explicit_nulls_for_optional_fields_are_fine(mcp: Client, mock_api: MockAPI) -> None:
    result = await mcp.call_tool(
        "upsert_log_score",
        {"log_id": "l", "evaluator_slug": "q", "evaluator_id": None, "boolean_value": True, "numerical_value": None},
    )
    assert not result.is_error, result.content
    assert json.loads(mock_api.writes[0].content) == {"evaluator_slug": "q", "boolean_value": True}


@pytest.mark.parametrize(
    "status, body, message",
    [
        (404, {"detail": "Log not found."}, "Log not found"),
        (401, {"detail": "Invalid API key."}, "rejected the API key"),
        (400, {"numerical_value": ["Ensure this value is less than or equal to 5."]}, "numerical_value: Ensure"),
    ],
)
async def test_api_errors_are_clear_tool_errors(status: int, body: dict, message: str) -> None:
    mock_api = MockAPI(status, body)
    async with Client(build_server(Config(api_key=KEY), transport=mock_api)) as client:
        result = await client.call_tool("upsert_log_score", {"log_id": "l", "evaluator_slug": "q", "numerical_value": 9})
    assert result.is_error and message in result.content[0].text
    assert KEY not in result.content[0].text
    assert len(mock_api.writes) == 1


async def test_without_a_key_tools_list_and_calls_explain(mock_api: MockAPI) -> None:
    async with Client(build_server(Config(api_key=None), transport=mock_api)) as client:
        assert len((await client.list_tools()).tools) == 9
        result = await client.call_tool("upsert_log_score", {"log_id": "l", "evaluator_slug": "q", "numerical_value": 1})
    assert result.is_error and "RESPAN_API_KEY" in result.content[0].text
    assert mock_api.requests == []
