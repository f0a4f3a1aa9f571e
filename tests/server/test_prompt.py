"""The self_grade prompt and its completions, through the MCP client."""

from __future__ import annotations

import pytest
from mcp import Client
from mcp.types import PromptReference

from tests.fake_api import FakeRespan

pytestmark = pytest.mark.anyio

REF = PromptReference(type="ref/prompt", name="self_grade")


@pytest.fixture
def fake(fake: FakeRespan) -> FakeRespan:
    """Three evaluators to complete and describe."""
    for slug, kind in [("helpfulness", "numerical"), ("harmlessness", "boolean"), ("tone", "single_select")]:
        fake.add_evaluator(id=f"evl_{slug}", slug=slug, name=slug.title(), score_value_type=kind)
    return fake


async def test_listed_with_described_arguments(mcp: Client) -> None:
    prompts = {prompt.name: prompt for prompt in (await mcp.list_prompts()).prompts}
    assert sorted(prompts) == ["grade_logs", "self_grade"] and all(p.title and p.description for p in prompts.values())
    arguments = {a.name: a for a in prompts["self_grade"].arguments}
    assert not any(arguments[name].required for name in ("log_id", "evaluators", "rubric"))
    many = {a.name: a for a in prompts["grade_logs"].arguments}
    assert many["evaluators"].required and not many["logs"].required
    assert all(a.description for p in prompts.values() for a in p.arguments)


async def test_renders_with_the_log_id_and_the_tools(mcp: Client) -> None:
    result = await mcp.get_prompt(
        "self_grade", {"log_id": "log_42", "evaluators": "helpfulness, tone", "rubric": "Cites its sources."}
    )
    text = result.messages[0].content.text
    assert '"log_42"' in text and "log log_42" in text
    for name in ("upsert_log_score", "upsert_log_scores", "- helpfulness: numerical", "- tone: single_select", "Cites its sources."):
        assert name in text


async def test_renders_without_optional_arguments(mcp: Client) -> None:
    text = (await mcp.get_prompt("self_grade", {"log_id": "log_1"})).messages[0].content.text
    assert "call list_evaluators to see them" in text and "rubric" not in text


async def test_completes_evaluator_slugs(mcp: Client) -> None:
    first = await mcp.complete(REF, {"name": "evaluators", "value": "h"})
    second = await mcp.complete(REF, {"name": "evaluators", "value": "helpfulness, "})
    assert sorted(first.completion.values) == ["harmlessness", "helpfulness"]
    assert sorted(second.completion.values) == ["helpfulness, harmlessness", "helpfulness, tone"]


@pytest.mark.parametrize("mcp_settings", [{"api_key": None}], indirect=True, ids=["no key"])
async def test_no_completions_without_a_key(mcp: Client) -> None:
    result = await mcp.complete(REF, {"name": "evaluators", "value": "h"})
    assert result.completion.values == []
