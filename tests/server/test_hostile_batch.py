"""Items of one batch that write the same score (the same log and evaluator, by id or by slug): the later
value is kept every time, because only the later item is sent; the earlier comes back `superseded`.

Run many times over with concurrency against the loopback stand-in, through the real server in-process.
"""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from tests.evaluator_sets import any_log_and_helpfulness, batch_settings
from tests.fake_api import FakeRespan

pytestmark = pytest.mark.anyio

RUNS = 50


fake = pytest.fixture(any_log_and_helpfulness, name="fake")  # any log is known; one numerical evaluator
mcp_settings = pytest.fixture(batch_settings, name="mcp_settings")


def item(log_id: str, value: float, **evaluator: str) -> dict[str, Any]:
    return {"log_id": log_id, "numerical_value": value} | (evaluator or {"evaluator_slug": "helpfulness"})


# Three items for log-1 and helpfulness (by slug, by id, by slug again), two for a custom slug on log-2,
# and others around them: the last of each group is the value that must be kept.
SCORES = [
    item("log-1", 1),
    item("log-2", 1, evaluator_slug="custom"),
    item("log-1", 2, evaluator_id="evl_help"),
    item("log-3", 4),
    item("log-2", 2, evaluator_slug="custom"),
    item("log-1", 5),
    item("log-1", 9),  # out of range: invalid, so it supersedes nothing
    item("log-4", 3),
]
STATUSES = ["superseded", "superseded", "superseded", "written", "written", "written", "invalid", "written"]


def stored(fake: FakeRespan) -> dict[str, float]:
    return {f"{s['log_id']}/{s.get('evaluator_slug') or s.get('evaluator_id')}": s["numerical_value"] for s in fake.scores.values()}


async def test_the_later_item_for_one_score_wins_every_time(mcp: Client, fake: FakeRespan) -> None:
    for run in range(RUNS):
        fake.reset()
        result = await mcp.call_tool("upsert_log_scores", {"scores": SCORES})
        assert not result.is_error, result.content[0].text
        summary = result.structured_content
        assert [r["status"] for r in summary["results"]] == STATUSES, (run, summary)
        assert (summary["written"], summary["superseded"], summary["invalid"]) == (4, 3, 1)
        assert "item 5 names the same log and evaluator" in summary["results"][0]["error"]
        assert "item 5" in summary["results"][2]["error"] and "item 4" in summary["results"][1]["error"]
        sent = sorted((w.path, w.body["numerical_value"]) for w in fake.writes())
        assert sent == [
            ("/api/logs/log-1/scores/", 5.0),
            ("/api/logs/log-2/scores/", 2.0),
            ("/api/logs/log-3/scores/", 4.0),
            ("/api/logs/log-4/scores/", 3.0),
        ], run
        assert stored(fake)["log-1/helpfulness"] == 5.0 and stored(fake)["log-2/custom"] == 2.0


async def test_the_dry_run_says_which_items_would_not_be_sent(mcp: Client, fake: FakeRespan) -> None:
    result = await mcp.call_tool("upsert_log_scores", {"scores": SCORES[:2] + SCORES[3:], "dry_run": True})
    summary = result.structured_content
    # Without the evaluator lookup a dry run knows the items' own names: log-1 by slug twice, log-2's custom slug.
    assert [r["status"] for r in summary["results"]] == ["superseded", "superseded", "valid", "valid", "valid", "invalid", "valid"]
    assert summary["superseded"] == 2 and "a later item writes the same score" in summary["next_step"]
    assert fake.writes() == []


async def test_an_invalid_later_item_leaves_the_earlier_one_to_be_written(mcp: Client, fake: FakeRespan) -> None:
    result = await mcp.call_tool("upsert_log_scores", {"scores": [item("log-1", 3), item("log-1", 0)]})
    assert [r["status"] for r in result.structured_content["results"]] == ["written", "invalid"]
    assert stored(fake) == {"log-1/helpfulness": 3.0}
