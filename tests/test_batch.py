"""upsert_log_scores through the MCP client against the loopback API: validation per item,
a shared back-off on 429, a deadline it never outlives, and key errors that stop the batch."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp import Client

from respan_mcp.batch import _ranges
from respan_mcp.config import Config
from respan_mcp.server import build_server
from tests.conftest import API_KEY
from tests.fake_api import FakeRespan, RunningFakeRespan
from tests.test_models import assert_flat

pytestmark = pytest.mark.anyio

RATE_LIMITED = {"detail": "Rate limit exceeded", "retry_after": 30}


@pytest.fixture
def fake() -> FakeRespan:
    fake = FakeRespan(api_keys=(API_KEY,), accept_any_log=True)
    fake.add_evaluator(id="evl_help", slug="helpfulness", name="Helpfulness", score_value_type="numerical",
                       score_config={"min_score": 1, "max_score": 5})
    return fake


@pytest.fixture
async def client(api: RunningFakeRespan) -> AsyncIterator[Client]:
    async with Client(build_server(Config(api_key=API_KEY, base_url=api.url, max_concurrency=8))) as connected:
        yield connected


def items(count: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"log_id": f"log-{i}", "evaluator_slug": "helpfulness", "numerical_value": 1 + i % 5} | extra for i in range(count)]


def stored_once(fake: FakeRespan, count: int) -> None:
    keys = [(s["log_id"], s["evaluator_slug"]) for s in fake.scores.values()]
    assert len(keys) == len(set(keys)) == count


async def test_schema_is_flat_with_items_inline(client: Client) -> None:
    tool = next(t for t in (await client.list_tools()).tools if t.name == "upsert_log_scores")
    assert_flat(tool.input_schema)
    assert_flat(tool.output_schema)
    item = tool.input_schema["properties"]["scores"]["items"]
    assert item["type"] == "object" and {"log_id", "evaluator_slug", "numerical_value"} <= set(item["properties"])
    assert tool.input_schema["properties"]["scores"]["maxItems"] == 500


async def test_one_invalid_item_among_twenty(client: Client, fake: FakeRespan) -> None:
    scores = items(20)
    scores[7] = {"log_id": "log-7", "evaluator_slug": "helpfulness", "boolean_value": True}
    result = await client.call_tool("upsert_log_scores", {"scores": scores})
    assert not result.is_error, result.content
    summary = result.structured_content
    assert (summary["written"], summary["invalid"], summary["failed"], summary["deferred"]) == (19, 1, 0, 0)
    assert [r["index"] for r in summary["results"]] == list(range(20))
    bad = summary["results"][7]
    assert bad["status"] == "invalid" and "send numerical_value between 1 and 5, not boolean_value" in bad["error"]
    assert "/api/logs/log-7/scores/" not in [w.path for w in fake.writes()]
    stored_once(fake, 19)
    assert summary["results"][0]["score"]["numerical_value"] == 1


async def test_invalid_items_of_every_kind_are_reported_and_never_sent(client: Client, fake: FakeRespan) -> None:
    scores = [
        {"log_id": "a", "evaluator_slug": "helpfulness", "numerical_value": 9},  # out of the evaluator's range
        {"log_id": "b", "evaluator_slug": "custom", "numerical_value": 1, "boolean_value": True},  # two values
        {"log_id": "c", "evaluator_slug": "custom", "numerical_value": "high"},  # wrong type
        {"log_id": "d", "evaluator_slug": "custom", "colour": "red", "numerical_value": 1},  # unknown field
        "not an object",
        {"log_id": "e", "evaluator_slug": "custom", "string_value": "fine"},
    ]
    result = await client.call_tool("upsert_log_scores", {"scores": scores})
    statuses = [r["status"] for r in result.structured_content["results"]]
    assert statuses == ["invalid"] * 5 + ["written"]
    assert "(got 9)" in result.structured_content["results"][0]["error"]
    assert [w.path for w in fake.writes()] == ["/api/logs/e/scores/"]


async def test_scores_sent_as_json_text_are_accepted(client: Client, fake: FakeRespan) -> None:
    import json

    result = await client.call_tool("upsert_log_scores", {"scores": json.dumps(items(3))})
    assert not result.is_error and result.structured_content["written"] == 3


async def test_a_429_slows_the_batch_and_everything_is_stored_once(client: Client, fake: FakeRespan) -> None:
    await client.call_tool("list_evaluators", {"search": "helpfulness"})  # so the 429 below meets a write
    fake.fail_next(429, {"detail": "Rate limit exceeded", "retry_after": 1}, headers={"Retry-After": "1"})
    result = await client.call_tool("upsert_log_scores", {"scores": items(10), "deadline_seconds": 20})
    assert not result.is_error, result.content
    assert result.structured_content["written"] == 10
    assert len(fake.writes()) == 11  # the refused one, sent again once
    stored_once(fake, 10)


async def test_deadline_defers_and_the_follow_up_stores_each_once(client: Client, fake: FakeRespan) -> None:
    await client.call_tool("list_evaluators", {"search": "helpfulness"})
    fake.fail_next(429, RATE_LIMITED, headers={"Retry-After": "30"}, times=1000)
    started = time.monotonic()
    result = await client.call_tool("upsert_log_scores", {"scores": items(12), "deadline_seconds": 5})
    elapsed = time.monotonic() - started
    assert elapsed < 5 + 2  # hang guard: the batch never outlives its deadline (plus the answer's trip)
    summary = result.structured_content
    assert not result.is_error  # deferred is not a failure
    assert summary["deferred"] == 12 and summary["written"] == 0 and fake.scores == {}
    assert 25 <= summary["retry_after_seconds"] <= 30
    assert summary["next_step"].startswith("call upsert_log_scores again with the 12 deferred items after")
    assert all(r["status"] == "deferred" and "safe" in r["error"] for r in summary["results"])

    fake.reset()  # the limit lifts
    deferred = [items(12)[r["index"]] for r in summary["results"] if r["status"] == "deferred"]
    again = await client.call_tool("upsert_log_scores", {"scores": deferred})
    assert again.structured_content["written"] == 12
    stored_once(fake, 12)


async def test_a_401_stops_the_batch(fake: FakeRespan, api: RunningFakeRespan) -> None:
    config = Config(api_key="revoked-key", base_url=api.url, max_concurrency=4)
    async with Client(build_server(config)) as client:
        result = await client.call_tool("upsert_log_scores", {"scores": items(30)})
    assert result.is_error
    summary = result.structured_content
    assert summary["failed"] == 30 and len(summary["results"]) == 30
    assert all("rejected the API key" in r["error"] for r in summary["results"])
    assert len(fake.requests) <= 4 and "revoked-key" not in str(summary)


async def test_a_404_fails_only_its_item(fake: FakeRespan, api: RunningFakeRespan) -> None:
    strict = FakeRespan(api_keys=(API_KEY,))
    strict.add_log("known")
    with RunningFakeRespan(strict) as other:
        async with Client(build_server(Config(api_key=API_KEY, base_url=other.url))) as client:
            scores = [{"log_id": "known", "evaluator_slug": "x", "boolean_value": True},
                      {"log_id": "unknown", "evaluator_slug": "x", "boolean_value": True}]
            result = await client.call_tool("upsert_log_scores", {"scores": scores})
    assert [r["status"] for r in result.structured_content["results"]] == ["written", "failed"]
    assert "Log not found" in result.structured_content["results"][1]["error"]


async def test_progress_is_reported(client: Client) -> None:
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))

    await client.call_tool("upsert_log_scores", {"scores": items(5)}, progress_callback=on_progress)
    assert seen and seen[-1] == (5, 5)


@pytest.mark.parametrize("scores, message", [([], "scores"), (items(501), "scores")])
async def test_batch_size_is_bounded(client: Client, fake: FakeRespan, scores: list, message: str) -> None:
    result = await client.call_tool("upsert_log_scores", {"scores": scores})
    assert result.is_error and message in result.content[0].text
    assert fake.writes() == []


def test_index_ranges_stay_short() -> None:
    assert _ranges([0, 1, 2, 5, 7, 8]) == "0-2, 5, 7-8"
    assert _ranges([4]) == "4"
