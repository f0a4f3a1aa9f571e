"""find_logs and get_log as an agent sees them: the filter that reaches Respan, what comes back, what is refused."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
from mcp import Client

from respan_mcp.config import Config
from respan_mcp.server import build_server

pytestmark = pytest.mark.anyio

KEY = "sk-logs-canary-0a1b2c3d"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
LOG = {
    "unique_id": "log-7",
    "trace_unique_id": TRACE,
    "span_name": "support.answer",
    "timestamp": "2026-12-03T10:00:00Z",
    "custom_identifier": "ticket-42",
    "model": "gpt-4o",
    "status": "success",
    "input": "How do I reset my password?",
    "output": "Open Settings, then Security, then Reset.",
    "prompt_messages": [{"role": "user", "content": "How do I reset my password?"}],
    "full_request": {"secret": "not shown unless asked"},
    "cost": 0.0012,
    "metadata": {"team": "support"},
    "scores": {
        "ev-1": {"id": "s-1", "evaluator_slug": "helpfulness", "score_value_type": "numerical", "numerical_value": 4.0,
                 "is_passed": True, "explanation": "Clear steps."},
    },
}


class LogsAPI(httpx2.MockTransport):
    def __init__(self, log: dict[str, Any] = LOG) -> None:
        self.requests: list[httpx2.Request] = []
        self.log = log
        super().__init__(self.answer)

    def answer(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        if request.url.path == "/api/request-logs/list/":
            row = {k: v for k, v in self.log.items() if k not in ("input", "output", "prompt_messages", "full_request")}
            return httpx2.Response(200, json={"count": 1, "next": None, "previous": None, "results": [row]})
        if request.url.path == f"/api/request-logs/{self.log['unique_id']}/":
            return httpx2.Response(200, json=self.log)
        return httpx2.Response(404, json={"detail": "Not found."})


async def call(tool: str, arguments: dict[str, Any], api: LogsAPI, meta: dict[str, Any] | None = None) -> Any:
    async with Client(build_server(Config(api_key=KEY), transport=api)) as client:
        return await client.call_tool(tool, arguments, meta=meta)  # type: ignore[arg-type]


async def test_find_logs_by_custom_identifier_sends_the_documented_filter() -> None:
    api = LogsAPI()
    result = await call("find_logs", {"custom_identifier": "ticket-42", "page_size": 5}, api)
    assert not result.is_error, result.content
    (request,) = api.requests
    assert (request.method, request.url.path) == ("POST", "/api/request-logs/list/")
    assert json.loads(request.content) == {
        "filters": {"custom_identifier": {"operator": "", "value": ["ticket-42"]}}, "operator": "AND"
    }
    params = dict(request.url.params)
    assert params["page"] == "1" and params["page_size"] == "5" and params["sort_by"] == "-timestamp"
    assert params["start_time"].endswith("Z") and params["end_time"].endswith("Z")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    page = result.structured_content
    assert page["count"] == 1 and page["start_time"] == params["start_time"] and page["end_time"] == params["end_time"]
    (row,) = page["logs"]
    assert row["log_id"] == "log-7" and row["trace_unique_id"] == TRACE and "input" not in row


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        ({"start_time": "yesterday"}, "start_time"),
        ({"start_time": "2026-12-02T00:00:00Z", "end_time": "2026-12-01T00:00:00Z"}, "before end_time"),
        ({"end_time": "2026-12-01T00:00:00"}, "time zone"),
        ({"page_size": 51}, "page_size"),
        ({"metadata_key": "team"}, "metadata_value"),
        ({"nickname": "x"}, "nickname is not an argument"),
    ],
)
async def test_a_bad_filter_is_refused_naming_it_before_any_request(arguments: dict[str, Any], said: str) -> None:
    api = LogsAPI()
    result = await call("find_logs", arguments, api)
    assert result.is_error and said in result.content[0].text and "Nothing was sent" in result.content[0].text
    assert api.requests == []


async def test_current_trace_filters_by_the_trace_id_the_request_carried() -> None:
    api = LogsAPI()
    meta = {"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}
    result = await call("find_logs", {"current_trace": True}, api, meta)
    assert not result.is_error and result.structured_content["trace_unique_id"] == TRACE
    assert json.loads(api.requests[0].content)["filters"] == {"trace_unique_id": {"operator": "", "value": [TRACE]}}


async def test_current_trace_without_trace_context_says_what_to_pass_instead() -> None:
    api = LogsAPI()
    result = await call("find_logs", {"current_trace": True}, api)
    assert result.is_error and "traceparent" in result.content[0].text and "custom_identifier" in result.content[0].text
    assert api.requests == []


async def test_get_log_shows_what_the_run_was_asked_and_answered_and_its_scores() -> None:
    api = LogsAPI()
    result = await call("get_log", {"log_id": "log-7"}, api)
    assert not result.is_error, result.content
    log = result.structured_content
    assert log["input"] == LOG["input"] and log["output"] == LOG["output"]
    assert json.loads(log["prompt_messages"]) == LOG["prompt_messages"]
    assert log["scores"] == [{
        "evaluator": "helpfulness", "id": "s-1", "score_value_type": "numerical", "value": "4.0", "is_passed": True,
        "explanation": "Clear steps.",
    }]
    assert "full_request" not in log and log["metadata"] == {"team": "support"} and "cut" not in log


async def test_an_unknown_log_is_a_tool_error_naming_it() -> None:
    result = await call("get_log", {"log_id": "log-404"}, LogsAPI())
    assert result.is_error and "no log has id 'log-404'" in result.content[0].text
    assert "may not have recorded it yet" in result.content[0].text


async def test_a_30_mb_log_answers_small_saying_what_was_cut_and_how_to_read_on() -> None:
    huge = LOG | {"output": "x" * 30_000_000, "prompt_messages": [{"role": "user", "content": "y" * 1_000_000}]}
    result = await call("get_log", {"log_id": "log-7"}, LogsAPI(huge))
    assert not result.is_error, result.content[0].text[:300]
    assert len(result.content[0].text) < 200_000
    cuts = {cut["field"]: cut for cut in result.structured_content["cut"]}
    assert cuts["output"]["length"] == 30_000_000 and cuts["output"]["shown_to"] == 4000
    assert "offset 4000" in cuts["output"]["read_on"]
    more = await call("get_log", {"log_id": "log-7", "fields": ["output"], "offset": 29_999_000, "max_chars": 2000},
                      LogsAPI(huge))
    assert more.structured_content["output"] == "x" * 1000
    assert more.structured_content["cut"][0]["read_on"] == "this is the end of the field"


async def test_blurred_content_is_said_to_be_blurred() -> None:
    result = await call("get_log", {"log_id": "log-7"}, LogsAPI(LOG | {"blurred": True}))
    assert "output" not in result.structured_content and "output" in result.structured_content["blurred"]
