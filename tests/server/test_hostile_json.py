"""Hostile JSON, both ways: arguments sent as JSON text nested without bound, and successful answers that are
spoiled (nested 30k deep, a header the client cannot encode, NaN, a key echoed back).

Arguments too deep are malformed input: a single call says what was wrong and that nothing was sent; one
such batch item is `invalid` and the rest go on. A write Respan answered with success is reported as
written whatever its answer holds, never failing the tool's own output schema or the other items.
Driven through the real server in-process (the SDK's Client checks every result against the tool's output
schema) and over stdio with the installed console script.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from respan_mcp.config import Config
from respan_mcp.server import build_server
from respan_mcp.values import MAX_JSON_DEPTH
from tests.conftest import console_script, server_env
from tests.fake_api import FakeRespan, RunningFakeRespan

pytestmark = pytest.mark.anyio

DEEP = 50_000
DEEP_ARRAY_TEXT = "[" * DEEP + "]" * DEEP
CANARY = "sk-canary-hostile-7f3a9c2e41d8b6"  # a key the spoiled answers echo back


@pytest.fixture
def fake(fake: FakeRespan) -> FakeRespan:
    """The canary key is accepted too; any log is known."""
    fake.api_keys.add(CANARY)
    fake.accept_any_log = True
    return fake


@pytest.fixture
def mcp_settings() -> dict[str, Any]:
    return {"max_retries": 0}


def write(log_id: str = "log-1", **extra: Any) -> dict[str, Any]:
    return {"log_id": log_id, "evaluator_slug": "custom", "numerical_value": 3} | extra


def deep_answer(depth: int = 30_000) -> str:
    return '{"id": "score_deep", "numerical_value": 3, "inputs": {"x": ' + "[" * depth + "]" * depth + "}}"


# -- arguments as JSON text, nested without bound ---------------------------------------------------


async def test_deep_categorical_text_says_what_was_wrong_and_that_nothing_was_sent(
    mcp: Client, fake: FakeRespan
) -> None:
    result = await mcp.call_tool("upsert_log_score", write(numerical_value=None, categorical_value=DEEP_ARRAY_TEXT))
    text = result.content[0].text
    assert result.is_error
    assert f"nested more than {MAX_JSON_DEPTH} levels deep" in text and "Nothing was sent" in text, text
    assert "unknown" not in text and "RecursionError" not in text
    assert fake.writes() == []


async def test_deep_scores_text_is_refused_saying_nothing_was_sent(mcp: Client, fake: FakeRespan) -> None:
    scores = '[{"log_id": "log-1", "evaluator_slug": "custom", "numerical_value": 1, "x": ' + DEEP_ARRAY_TEXT + "}]"
    result = await mcp.call_tool("upsert_log_scores", {"scores": scores})
    text = result.content[0].text
    assert result.is_error and "scores is JSON text nested more than" in text and "Nothing was sent" in text, text
    assert fake.writes() == []


@pytest.mark.parametrize("dry_run", [False, True])
async def test_a_deep_batch_item_is_invalid_and_the_others_go_on(mcp: Client, fake: FakeRespan, dry_run: bool) -> None:
    deep_item = '{"log_id": "log-deep", "evaluator_slug": "custom", "numerical_value": 1, "x": ' + DEEP_ARRAY_TEXT + "}"
    scores = [write("log-a"), deep_item, json.dumps(write("log-b")), "not json at all"]
    result = await mcp.call_tool("upsert_log_scores", {"scores": scores, "dry_run": dry_run})
    assert not result.is_error, result.content[0].text
    summary = result.structured_content
    good = "valid" if dry_run else "written"
    assert [r["status"] for r in summary["results"]] == [good, "invalid", good, "invalid"]
    assert f"nested more than {MAX_JSON_DEPTH} levels deep" in summary["results"][1]["error"]
    assert "not JSON" in summary["results"][3]["error"]
    written = sorted(r.path for r in fake.writes())
    assert written == ([] if dry_run else ["/api/logs/log-a/scores/", "/api/logs/log-b/scores/"])


async def test_deep_json_value_text_is_refused_before_sending(mcp: Client, fake: FakeRespan) -> None:
    result = await mcp.call_tool("upsert_log_score", write(numerical_value=None, json_value=DEEP_ARRAY_TEXT))
    assert result.is_error and "nested too deeply" in result.content[0].text and "Nothing was sent" in result.content[0].text
    assert fake.writes() == []


# -- successful answers that are spoiled --------------------------------------------------------------

SPOILED: dict[str, tuple[str, dict[str, str]]] = {
    "nested 30k deep": (deep_answer(), {}),
    "a header the client cannot encode": ('{"id": "score_hdr", "numerical_value": 3}', {"x-note": "caf\u00e9 \u00fcber"}),
    "NaN and Infinity": ('{"id": "score_nan", "numerical_value": NaN, "cost": Infinity, "x": -Infinity}', {}),
    "1e999 and a null cost": ('{"id": "score_big", "numerical_value": 1e999, "cost": null}', {}),
}


@pytest.mark.parametrize("name", list(SPOILED))
async def test_a_spoiled_success_is_shown_as_the_write_it_was(mcp: Client, fake: FakeRespan, name: str) -> None:
    body, headers = SPOILED[name]
    fake.fail_next(201, body, headers=headers, method="POST")
    result = await mcp.call_tool("upsert_log_score", write())  # the SDK's Client checks the output schema
    assert not result.is_error, result.content[0].text
    structured = result.structured_content
    assert structured["id"].startswith("score_")
    assert all(value is not None for value in structured.values())
    assert json.loads(result.content[0].text) == structured
    assert len(fake.writes()) == 1


async def test_an_unreadable_success_says_the_write_went_through(mcp: Client, fake: FakeRespan) -> None:
    fake.fail_next(201, "<html><title>Saved</title></html>", method="POST")
    result = await mcp.call_tool("upsert_log_score", write())
    text = result.content[0].text
    assert result.is_error and "went through" in text and "unknown" not in text, text


async def test_a_batch_reports_each_spoiled_answer_as_written_and_the_call_survives(
    mcp: Client, fake: FakeRespan
) -> None:
    for body, headers in SPOILED.values():
        fake.fail_next(201, body, headers=headers, method="POST")
    fake.fail_next(201, "not json", method="POST")
    count = len(SPOILED) + 3
    with anyio.fail_after(30):
        result = await mcp.call_tool("upsert_log_scores", {"scores": [write(f"log-{i}") for i in range(count)]})
    assert not result.is_error, result.content[0].text
    summary = result.structured_content
    assert (summary["written"], summary["failed"], summary["invalid"]) == (count, 0, 0)
    without_score = [r for r in summary["results"] if "score" not in r]
    assert len(without_score) == 1 and "went through" in without_score[0]["error"]
    assert len(fake.writes()) == count


async def test_an_answer_that_echoes_the_key_never_shows_it(api: RunningFakeRespan, fake: FakeRespan) -> None:
    echoed = {"id": "score_echo", "scorer": f"proxy:{CANARY}", "inputs": {CANARY[:20]: f"Bearer {CANARY}"}}
    fake.fail_next(201, echoed, method="POST")
    fake.fail_next(201, echoed, method="POST")
    async with Client(build_server(Config(api_key=CANARY, base_url=api.url))) as client:
        single = await client.call_tool("upsert_log_score", write())
        batch = await client.call_tool("upsert_log_scores", {"scores": [write("log-x")]})
    for result in (single, batch):
        assert not result.is_error, result.content[0].text
        shown = result.content[0].text + json.dumps(result.structured_content)
        assert "[API key]" in shown
        assert not any(CANARY[i : i + 8] in shown for i in range(len(CANARY) - 7)), shown


# -- the same over stdio, with the installed console script ------------------------------------------


@pytest.mark.slow  # starts the console script
async def test_hostile_json_over_stdio(api: RunningFakeRespan, fake: FakeRespan) -> None:
    params = StdioServerParameters(command=console_script(), args=[], env=server_env(api.url, RESPAN_MAX_RETRIES="0"))
    async with Client(params) as client:
        deep = await client.call_tool("upsert_log_score", write(numerical_value=None, categorical_value=DEEP_ARRAY_TEXT))
        assert deep.is_error and "Nothing was sent" in deep.content[0].text and fake.writes() == []
        for body, headers in SPOILED.values():
            fake.fail_next(201, body, headers=headers, method="POST")
            result = await client.call_tool("upsert_log_score", write())
            assert not result.is_error, result.content[0].text
        for body, headers in SPOILED.values():
            fake.fail_next(201, body, headers=headers, method="POST")
        scores = [write("log-a"), "[" * 5000 + "]" * 5000, *[write(f"log-{i}") for i in range(len(SPOILED))]]
        batch = await client.call_tool("upsert_log_scores", {"scores": scores})
        summary = batch.structured_content
        assert not batch.is_error and (summary["written"], summary["invalid"]) == (len(SPOILED) + 1, 1)
