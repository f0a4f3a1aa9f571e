"""Scores checked against the evaluator they are for, and the read tools, against the loopback API."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from mcp import Client

from respan_mcp.client import RespanClient
from respan_mcp.config import Config
from respan_mcp.evaluator_cache import EvaluatorCache
from respan_mcp.net import Caller
from tests.conftest import API_KEY, LOG_ID
from tests.evaluator_sets import add_helpfulness
from tests.fake_api import FakeRespan, RunningFakeRespan

pytestmark = pytest.mark.anyio

CHOICES = [{"name": "Polite", "value": "polite"}, {"name": "Neutral", "value": "neutral"}, {"name": "Rude", "value": "rude"}]


@pytest.fixture
def fake(fake: FakeRespan) -> FakeRespan:
    """A second key, and an evaluator of every value type (two in legacy form)."""
    fake.api_keys.add("other-key")
    add_helpfulness(fake)
    fake.add_evaluator(id="evl_safe", slug="is_safe", name="Safe", score_value_type="boolean")
    fake.add_evaluator(id="evl_tone", slug="tone", name="Tone", score_value_type="single_select",
                       score_config={"choices": CHOICES})
    fake.add_evaluator(id="evl_topics", slug="topics", name="Topics", score_value_type="multi_select",
                       score_config={"choices": [{"name": "Math", "value": "math"}, {"name": "Code", "value": "code"}]})
    fake.add_evaluator(id="evl_note", slug="feedback", name="Feedback", score_value_type="text")
    fake.add_evaluator(id="evl_cov:2", slug="coverage", name="Coverage", score_value_type="percentage")
    fake.add_evaluator(id="evl_old", slug="legacy_grade", name="Legacy", score_value_type="categorical",
                       categorical_choices=[{"name": "A", "value": "A"}, {"name": "B", "value": "B"}])
    fake.add_evaluator(id="evl_old_num", slug="legacy_stars", name="Stars", score_value_type="numerical",
                       configurations={"min_score": 0, "max_score": 3})
    return fake


@pytest.fixture
def mcp_settings() -> dict[str, Any]:
    return {"max_retries": 0}


def lookups(fake: FakeRespan) -> list[Any]:
    return [r for r in fake.requests if r.method == "GET" and r.path.startswith("/api/evaluators/")]


async def write(mcp: Client, **arguments: Any):
    return await mcp.call_tool("upsert_log_score", {"log_id": LOG_ID} | arguments)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"evaluator_slug": "helpfulness", "boolean_value": True},
         "evaluator 'helpfulness' is numerical (1 to 5): send numerical_value between 1 and 5, not boolean_value"),
        ({"evaluator_slug": "helpfulness", "numerical_value": 7},
         "evaluator 'helpfulness' is numerical (1 to 5): send numerical_value between 1 and 5 (got 7)"),
        ({"evaluator_slug": "tone", "categorical_value": ["angry"]},
         "send categorical_value with exactly one of 'polite', 'neutral', 'rude' (got 'angry')"),
        ({"evaluator_slug": "tone", "categorical_value": ["polite", "rude"]}, "exactly one choice"),
        ({"evaluator_slug": "is_safe", "string_value": "yes"}, "evaluator 'is_safe' is boolean: send boolean_value, not string_value"),
        ({"evaluator_id": "evl_cov:2", "numerical_value": 120}, "percentage"),
        ({"evaluator_slug": "legacy_grade", "categorical_value": ["C"]}, "one or more of 'A', 'B' (got 'C')"),
        ({"evaluator_slug": "legacy_stars", "numerical_value": 4}, "numerical (0 to 3)"),
        ({"evaluator_slug": "helpfulness", "score_value_type": "boolean", "boolean_value": True},
         "score_value_type 'boolean' does not match: evaluator 'helpfulness' is numerical"),
    ],
)
async def test_refused_before_any_write(mcp: Client, fake: FakeRespan, arguments: dict, message: str) -> None:
    result = await write(mcp, **arguments)
    assert result.is_error, result.content
    assert message in result.content[0].text and "Nothing was sent" in result.content[0].text
    assert fake.writes() == []


@pytest.mark.parametrize(
    "arguments",
    [
        {"evaluator_slug": "helpfulness", "numerical_value": 5},
        {"evaluator_id": "evl_help", "numerical_value": 1},
        {"evaluator_slug": "tone", "categorical_value": ["neutral"]},
        {"evaluator_slug": "topics", "categorical_value": ["math", "code"]},
        {"evaluator_slug": "feedback", "string_value": "clear"},
        {"evaluator_id": "evl_cov:2", "numerical_value": 80},
        {"evaluator_slug": "legacy_grade", "categorical_value": '["A"]'},
    ],
)
async def test_valid_scores_write(mcp: Client, fake: FakeRespan, arguments: dict) -> None:
    result = await write(mcp, **arguments)
    assert not result.is_error, result.content
    assert len(fake.writes()) == 1


async def test_versioned_id_is_looked_up_encoded(mcp: Client, fake: FakeRespan) -> None:
    await write(mcp, evaluator_id="evl_cov:2", numerical_value=50)
    assert [r.path for r in lookups(fake)] == ["/api/evaluators/evl_cov%3A2/"]


async def test_custom_slug_writes_unchecked(mcp: Client, fake: FakeRespan) -> None:
    result = await write(mcp, evaluator_slug="my_custom_metric", numerical_value=1234)
    assert not result.is_error, result.content
    assert fake.writes()[0].body == {"evaluator_slug": "my_custom_metric", "numerical_value": 1234.0}


async def test_five_scores_one_lookup(mcp: Client, fake: FakeRespan) -> None:
    for value in range(1, 6):
        fake.add_log(f"log-{value}")
        result = await mcp.call_tool(
            "upsert_log_score", {"log_id": f"log-{value}", "evaluator_slug": "helpfulness", "numerical_value": value}
        )
        assert not result.is_error
    assert len(lookups(fake)) == 1 and len(fake.writes()) == 5


async def test_concurrent_lookups_coalesce(mcp: Client, fake: FakeRespan) -> None:
    fake.latency = 0.05

    async def one(index: int) -> None:
        fake.add_log(f"log-c{index}")
        result = await mcp.call_tool(
            "upsert_log_score", {"log_id": f"log-c{index}", "evaluator_slug": "tone", "categorical_value": ["polite"]}
        )
        assert not result.is_error

    async with anyio.create_task_group() as group:
        for index in range(10):
            group.start_soon(one, index)
    assert len(lookups(fake)) == 1 and len(fake.writes()) == 10


async def test_failed_lookup_falls_back_to_core_rules(mcp: Client, fake: FakeRespan, caplog) -> None:
    fake.fail_next(503, "<html><title>Service Unavailable</title></html>")
    result = await write(mcp, evaluator_slug="helpfulness", numerical_value=3)
    assert not result.is_error, result.content
    assert len(fake.writes()) == 1
    assert "core rules only" in caplog.text and API_KEY not in caplog.text


async def test_update_checks_the_scores_evaluator(mcp: Client, fake: FakeRespan) -> None:
    written = await write(mcp, evaluator_slug="helpfulness", numerical_value=4)
    score_id = written.structured_content["id"]
    refused = await mcp.call_tool("update_score", {"score_id": score_id, "boolean_value": True})
    assert refused.is_error
    assert "evaluator 'helpfulness' is numerical (1 to 5): send numerical_value between 1 and 5" in refused.content[0].text
    out_of_range = await mcp.call_tool("update_score", {"score_id": score_id, "numerical_value": 9})
    assert out_of_range.is_error and "(got 9)" in out_of_range.content[0].text
    assert [r.method for r in fake.writes()] == ["POST"]
    fine = await mcp.call_tool("update_score", {"score_id": score_id, "numerical_value": 2})
    assert not fine.is_error and fine.structured_content["numerical_value"] == 2


async def test_update_of_unknown_score_says_so(mcp: Client, fake: FakeRespan) -> None:
    result = await mcp.call_tool("update_score", {"score_id": "score_nope", "numerical_value": 1})
    assert result.is_error and "no score has id 'score_nope'" in result.content[0].text
    assert fake.writes() == []


async def test_list_evaluators_tells_field_range_and_choices(mcp: Client, fake: FakeRespan) -> None:
    result = await mcp.call_tool("list_evaluators", {"search": "tone"})
    assert not result.is_error, result.content
    (tone,) = result.structured_content["evaluators"]
    assert tone == {
        "id": "evl_tone",
        "evaluator_slug": "tone",
        "name": "Tone",
        "score_value_type": "single_select",
        "value_field": "categorical_value",
        "choices": ["polite", "neutral", "rude"],
    }
    everything = await mcp.call_tool("list_evaluators", {"page_size": 3})
    assert everything.structured_content["count"] == 8 and everything.structured_content["next_page"] == 2
    assert len(everything.structured_content["evaluators"]) == 3


async def test_listed_evaluators_need_no_second_lookup(mcp: Client, fake: FakeRespan) -> None:
    await mcp.call_tool("list_evaluators", {"search": "helpfulness"})
    before = len(lookups(fake))
    await write(mcp, evaluator_slug="helpfulness", numerical_value=2)
    assert len(lookups(fake)) == before


async def test_list_log_scores_and_get_score(mcp: Client, fake: FakeRespan) -> None:
    first = await write(mcp, evaluator_slug="helpfulness", numerical_value=4)
    await write(mcp, evaluator_slug="is_safe", boolean_value=True)
    listed = await mcp.call_tool("list_log_scores", {"log_id": LOG_ID, "page_size": 1})
    assert not listed.is_error, listed.content
    assert listed.structured_content["count"] == 2 and listed.structured_content["next_page"] == 2
    got = await mcp.call_tool("get_score", {"score_id": first.structured_content["id"]})
    assert got.structured_content["numerical_value"] == 4 and got.structured_content["evaluator_slug"] == "helpfulness"
    missing = await mcp.call_tool("get_score", {"score_id": "score_none"})
    assert missing.is_error and "no score has id 'score_none'" in missing.content[0].text


async def test_cache_entries_never_cross_keys(api: RunningFakeRespan, fake: FakeRespan) -> None:
    client = RespanClient(Config(api_key=None, base_url=api.url))
    cache = EvaluatorCache(client, ttl=300)
    try:
        first = await cache.lookup((None, "helpfulness"), Caller(API_KEY, (API_KEY,)))
        again = await cache.lookup((None, "helpfulness"), Caller(API_KEY, (API_KEY,)))
        other = await cache.lookup((None, "helpfulness"), Caller("other-key", ("other-key",)))
    finally:
        await client.aclose()
    assert first == again == other and first.max_score == 5
    assert [r.headers["authorization"] for r in lookups(fake)] == [f"Bearer {API_KEY}", "Bearer other-key"]
    assert all(API_KEY not in repr(key) for key in cache._entries)


async def test_cache_expires_and_stays_bounded(api: RunningFakeRespan, fake: FakeRespan) -> None:
    client = RespanClient(Config(api_key=API_KEY, base_url=api.url))
    expiring = EvaluatorCache(client, ttl=0)
    bounded = EvaluatorCache(client, ttl=300, max_entries=2)
    server = Caller(API_KEY, (API_KEY,))
    try:
        await expiring.lookup((None, "helpfulness"), server)
        await expiring.lookup((None, "helpfulness"), server)
        for slug in ("helpfulness", "is_safe", "tone", "topics"):
            await bounded.lookup((None, slug), server)
    finally:
        await client.aclose()
    assert expiring.lookups == 2
    assert len(bounded._entries) == 2
