"""Grading against the evaluator's rubric (issue 16): get_evaluator, what list_evaluators adds, self_grade
with each evaluator's meaning, dry runs that write nothing, and pass/fail in every write result.

In-process through the SDK's own Client against the loopback API, plus one run over the installed
console script on stdio and one over streamable HTTP.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from respan_mcp.config import Config
from respan_mcp.prompt_text import UNREACHABLE
from respan_mcp.server import build_server
from tests.conftest import API_KEY, LOG_ID, console_script, free_port, http_server, server_env
from tests.evaluator_sets import DESCRIPTION, RUBRIC, TONE, add_graded_evaluators
from tests.fake_api import FakeRespan, RunningFakeRespan
from tests.unit.test_models import assert_flat

pytestmark = pytest.mark.anyio

DEFINITION = "Rate how useful this answer is.\nInput: {{input}}\nOutput: {{output}}"
CALLER_KEY = "key-of-the-caller"


@pytest.fixture
def fake(fake: FakeRespan) -> FakeRespan:
    """The caller's own key too, and evaluators with a rubric, a passing condition, or neither."""
    fake.api_keys.add(CALLER_KEY)
    add_graded_evaluators(fake, definition=DEFINITION, quality_id="evl_q:2")
    # Legacy shapes: range, rubric and prompt in `configurations`, choices in `categorical_choices`, and
    # what a modern evaluator has (score_config, llm_config, passing_conditions, description) absent.
    fake.add_evaluator(
        id="evl_old",
        slug="legacy_stars",
        name="Stars",
        score_value_type="numerical",
        configurations={"min_score": 0, "max_score": 3, "scoring_rubric": "0=off, 3=on", "evaluator_definition": "Rate {{output}}"},
    )
    old_grade = fake.add_evaluator(
        id="evl_grade", slug="legacy_grade", name="Grade", score_value_type="categorical", categorical_choices=["A", "B"]
    )
    for absent in ("score_config", "llm_config", "passing_conditions", "description"):
        del old_grade[absent]
    return fake


@pytest.fixture
def mcp_settings() -> dict[str, Any]:
    return {"max_retries": 0}


def lookups(fake: FakeRespan) -> list[str]:
    return [r.path for r in fake.requests if r.method == "GET" and r.path.startswith("/api/evaluators/")]


# -- get_evaluator -----------------------------------------------------------------------------------

QUALITY = {
    "id": "evl_q:2",
    "evaluator_slug": "quality",
    "name": "Quality",
    "score_value_type": "numerical",
    "value_field": "numerical_value",
    "min_score": 1.0,
    "max_score": 5.0,
    "description": DESCRIPTION,
    "rubric": RUBRIC,
    "definition": DEFINITION,
    "passing_condition": "numerical_value >= 3",
    "passing_operator": "gte",
    "passing_value": 3.0,
}


async def test_get_evaluator_by_id_gives_it_whole(mcp: Client, fake: FakeRespan) -> None:
    result = await mcp.call_tool("get_evaluator", {"evaluator_id": "evl_q:2"})
    assert not result.is_error, result.content
    assert result.structured_content == QUALITY
    assert lookups(fake) == ["/api/evaluators/evl_q%3A2/"]  # the id is one encoded path segment


async def test_get_evaluator_by_slug_searches_once_then_caches(mcp: Client, fake: FakeRespan) -> None:
    first = await mcp.call_tool("get_evaluator", {"evaluator_slug": "quality"})
    again = await mcp.call_tool("get_evaluator", {"evaluator_slug": "quality"})
    assert first.structured_content == again.structured_content == QUALITY
    (search,) = [r for r in fake.requests if r.path == "/api/evaluators/"]
    assert "search=quality" in search.query and len(lookups(fake)) == 1


async def test_get_evaluator_gives_choices_with_names_and_a_boolean_condition(mcp: Client) -> None:
    tone = (await mcp.call_tool("get_evaluator", {"evaluator_slug": "tone"})).structured_content
    assert tone["choices"] == TONE and "passing_condition" not in tone and "rubric" not in tone
    safe = (await mcp.call_tool("get_evaluator", {"evaluator_id": "evl_safe"})).structured_content
    assert safe["passing_condition"] == "boolean_value == true"
    assert (safe["passing_operator"], safe["passing_value"]) == ("eq", 1)  # a boolean threshold as it compares


async def test_get_evaluator_reads_legacy_shapes_and_leaves_absent_fields_out(mcp: Client) -> None:
    stars = (await mcp.call_tool("get_evaluator", {"evaluator_slug": "legacy_stars"})).structured_content
    assert (stars["min_score"], stars["max_score"]) == (0, 3)
    assert stars["rubric"] == "0=off, 3=on" and stars["definition"] == "Rate {{output}}"
    grade = await mcp.call_tool("get_evaluator", {"evaluator_id": "evl_grade"})
    assert not grade.is_error, grade.content
    assert grade.structured_content == {
        "id": "evl_grade",
        "evaluator_slug": "legacy_grade",
        "name": "Grade",
        "score_value_type": "categorical",
        "value_field": "categorical_value",
        "choices": [{"name": "A", "value": "A"}, {"name": "B", "value": "B"}],
    }


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"evaluator_slug": "qualty"}, "no evaluator has slug 'qualty'; list_evaluators shows the evaluators this key can see"),
        ({"evaluator_id": "evl_nope"}, "no evaluator has id 'evl_nope'; list_evaluators shows the evaluators this key can see"),
    ],
)
async def test_get_evaluator_names_what_it_could_not_find(
    mcp: Client, arguments: dict[str, str], message: str
) -> None:
    result = await mcp.call_tool("get_evaluator", arguments)
    assert result.is_error and message in result.content[0].text, result.content


@pytest.mark.parametrize("arguments, got", [({}, "neither"), ({"evaluator_id": "evl_q:2", "evaluator_slug": "quality"}, "both")])
async def test_get_evaluator_takes_exactly_one_of_id_or_slug(
    mcp: Client, fake: FakeRespan, arguments: dict[str, str], got: str
) -> None:
    result = await mcp.call_tool("get_evaluator", arguments)
    assert result.is_error and f"exactly one of evaluator_id or evaluator_slug (got {got})" in result.content[0].text
    assert fake.requests == []


async def test_get_evaluator_when_respan_fails_says_so_not_that_it_is_unknown(mcp: Client, fake: FakeRespan) -> None:
    fake.fail_next(503, {"detail": "down for maintenance"})
    result = await mcp.call_tool("get_evaluator", {"evaluator_slug": "quality"})
    assert result.is_error and "503" in result.content[0].text and "no evaluator has" not in result.content[0].text
    assert (await mcp.call_tool("get_evaluator", {"evaluator_id": "evl_plain"})).structured_content["id"] == "evl_plain"


# -- list_evaluators ---------------------------------------------------------------------------------


async def test_list_evaluators_gives_description_and_passing_condition_not_the_rubric(
    mcp: Client, fake: FakeRespan
) -> None:
    fake.add_evaluator(id="evl_long", slug="long", name="Long", score_value_type="text", description="Word " * 200)
    listed = (await mcp.call_tool("list_evaluators", {"page_size": 100})).structured_content["evaluators"]
    by_slug = {e["evaluator_slug"]: e for e in listed}
    assert by_slug["quality"]["description"] == DESCRIPTION
    assert by_slug["quality"]["passing_condition"] == "numerical_value >= 3"
    assert by_slug["safe"]["passing_condition"] == "boolean_value == true"
    assert all("rubric" not in e and "definition" not in e for e in listed)
    assert "passing_condition" not in by_slug["plain"] and "description" not in by_slug["legacy_grade"]
    assert len(by_slug["long"]["description"]) == 300 and by_slug["long"]["description"].endswith("…")


# -- self_grade --------------------------------------------------------------------------------------


async def prompt_text(mcp: Client, **arguments: str) -> str:
    result = await mcp.get_prompt("self_grade", {"log_id": "log_42"} | arguments)
    text: str = result.messages[0].content.text  # type: ignore[union-attr]
    return text


async def test_self_grade_carries_each_evaluators_description_rubric_and_condition(mcp: Client) -> None:
    text = await prompt_text(mcp, evaluators="quality, tone", rubric="Cites its sources.")
    assert DESCRIPTION in text and RUBRIC in text and "passes when numerical_value >= 3" in text
    assert "send numerical_value between 1 and 5" in text and "'good' means Kind and clear" in text
    assert "Cites its sources" in text and '"log_42"' in text
    assert "could not be reached" not in text and "no evaluator has slug" not in text


async def test_self_grade_names_an_unknown_slug(mcp: Client) -> None:
    text = await prompt_text(mcp, evaluators="quality, qualty")
    assert "no evaluator has slug 'qualty'" in text and RUBRIC in text


async def test_self_grade_when_respan_cannot_be_reached(fake: FakeRespan) -> None:
    config = Config(api_key=API_KEY, base_url=f"http://127.0.0.1:{free_port()}", max_retries=0)  # nothing listens
    async with Client(build_server(config)) as client:
        text = await prompt_text(client, evaluators="quality, tone", rubric="Cites its sources.")
    assert UNREACHABLE in text and "quality, tone" in text and "Cites its sources" in text


async def test_self_grade_looks_the_evaluators_up_at_once(fake: FakeRespan) -> None:
    """Two lookups must be in flight together: each answer waits until both have arrived."""
    both = anyio.Event()
    arrived: list[str] = []

    async def answer(request: httpx2.Request) -> httpx2.Response:
        arrived.append(request.url.params["search"])
        if len(arrived) == 2:
            both.set()
        with anyio.fail_after(10):  # a failure bound only: looked up one after the other, the first never answers
            await both.wait()
        found = [e for e in fake.evaluators.values() if e["evaluator_slug"] == request.url.params["search"]]
        return httpx2.Response(200, json={"count": len(found), "next": None, "previous": None, "results": found})

    server = build_server(Config(api_key=API_KEY, max_retries=0), transport=httpx2.MockTransport(answer))
    async with Client(server) as client:
        text = await prompt_text(client, evaluators="quality, safe")
    assert sorted(arrived) == ["quality", "safe"] and RUBRIC in text and "boolean_value == true" in text


async def test_self_grade_without_evaluators_looks_nothing_up(mcp: Client, fake: FakeRespan) -> None:
    text = await prompt_text(mcp)
    assert "call list_evaluators to see them" in text and fake.requests == []


# -- dry runs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments, expected",
    [
        (
            {"evaluator_slug": "quality", "numerical_value": 4},
            {"would_pass": True, "passing_condition": "numerical_value >= 3"},
        ),
        (
            {"evaluator_id": "evl_q:2", "numerical_value": 2, "environment": "ci"},
            {"would_pass": False, "passing_condition": "numerical_value >= 3"},
        ),
        ({"evaluator_slug": "safe", "boolean_value": False}, {"would_pass": False, "passing_condition": "boolean_value == true"}),
        ({"evaluator_slug": "plain", "numerical_value": 9}, {}),  # no condition: would_pass absent
        ({"evaluator_slug": "my_custom_metric", "numerical_value": 9}, {}),  # no evaluator
    ],
)
async def test_dry_run_upsert_shows_the_request_and_the_verdict_and_writes_nothing(
    mcp: Client, fake: FakeRespan, arguments: dict[str, Any], expected: dict[str, Any]
) -> None:
    result = await mcp.call_tool("upsert_log_score", {"log_id": "log/1", "dry_run": True} | arguments)
    assert not result.is_error, result.content
    body = {k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in arguments.items()}
    assert result.structured_content == {
        "dry_run": {"request": {"method": "POST", "path": "/api/logs/log%2F1/scores/", "body": body}} | expected
    }
    assert fake.writes() == []


async def test_dry_run_upsert_runs_every_check(mcp: Client, fake: FakeRespan) -> None:
    out_of_range = await mcp.call_tool(
        "upsert_log_score", {"log_id": LOG_ID, "evaluator_slug": "quality", "numerical_value": 7, "dry_run": True}
    )
    assert out_of_range.is_error and "between 1 and 5 (got 7)" in out_of_range.content[0].text
    wrong_choice = await mcp.call_tool(
        "upsert_log_score", {"log_id": LOG_ID, "evaluator_slug": "tone", "categorical_value": ["meh"], "dry_run": True}
    )
    assert wrong_choice.is_error and "exactly one of 'good', 'bad'" in wrong_choice.content[0].text
    pairing = await mcp.call_tool(
        "upsert_log_score",
        {"log_id": LOG_ID, "evaluator_slug": "x", "score_value_type": "boolean", "numerical_value": 1, "dry_run": True},
    )
    assert pairing.is_error and "takes boolean_value, not numerical_value" in pairing.content[0].text
    assert fake.writes() == []


async def test_dry_run_update_reads_the_score_and_patches_nothing(mcp: Client, fake: FakeRespan) -> None:
    written = await mcp.call_tool(
        "upsert_log_score", {"log_id": LOG_ID, "evaluator_slug": "quality", "numerical_value": 4}
    )
    score_id = written.structured_content["id"]
    before = len(fake.writes())
    result = await mcp.call_tool("update_score", {"score_id": score_id, "numerical_value": 2, "dry_run": True})
    assert not result.is_error, result.content
    assert result.structured_content == {
        "dry_run": {
            "request": {"method": "PATCH", "path": f"/api/scores/{score_id}/", "body": {"numerical_value": 2.0}},
            "would_pass": False,
            "passing_condition": "numerical_value >= 3",
        }
    }
    refused = await mcp.call_tool("update_score", {"score_id": score_id, "numerical_value": 9, "dry_run": True})
    assert refused.is_error and "(got 9)" in refused.content[0].text
    # With score_value_type nothing is read, so whether it would pass is not known.
    stated = await mcp.call_tool(
        "update_score", {"score_id": score_id, "score_value_type": "numerical", "numerical_value": 5, "dry_run": True}
    )
    assert stated.structured_content["dry_run"] == {
        "request": {"method": "PATCH", "path": f"/api/scores/{score_id}/", "body": {"numerical_value": 5.0}}
    }
    assert len(fake.writes()) == before and fake.scores[score_id]["numerical_value"] == 4


async def test_dry_run_batch_reports_each_item_and_writes_nothing(mcp: Client, fake: FakeRespan) -> None:
    scores = [
        {"log_id": LOG_ID, "evaluator_slug": "quality", "numerical_value": 5},
        {"log_id": LOG_ID, "evaluator_slug": "quality", "numerical_value": 9},
        {"log_id": LOG_ID, "evaluator_slug": "safe", "boolean_value": False},
        '{"log_id": "log-2", "evaluator_slug": "plain", "numerical_value": 1}',
        {"log_id": LOG_ID, "evaluator_slug": "quality", "numerical_value": 4, "dry_run": True},
    ]
    result = await mcp.call_tool("upsert_log_scores", {"scores": scores, "dry_run": True})
    assert not result.is_error, result.content
    answer = result.structured_content
    assert (answer["valid"], answer["invalid"], answer["written"], answer["failed"], answer["deferred"]) == (3, 2, 0, 0, 0)
    assert "nothing was written" in answer["next_step"]
    items = answer["results"]
    assert [item["status"] for item in items] == ["valid", "invalid", "valid", "valid", "invalid"]
    assert items[0]["dry_run"] == {
        "request": {"method": "POST", "path": "/api/logs/log-1/scores/", "body": {"evaluator_slug": "quality", "numerical_value": 5.0}},
        "would_pass": True,
        "passing_condition": "numerical_value >= 3",
    }
    assert "between 1 and 5 (got 9)" in items[1]["error"] and "dry_run" not in items[1]
    assert items[2]["dry_run"]["would_pass"] is False
    assert items[3]["dry_run"] == {
        "request": {"method": "POST", "path": "/api/logs/log-2/scores/", "body": {"evaluator_slug": "plain", "numerical_value": 1.0}}
    }
    assert "dry_run is not an argument" in items[4]["error"]  # the batch decides, not an item
    assert fake.writes() == []


async def test_dry_run_batch_with_nothing_valid_is_an_error(mcp: Client, fake: FakeRespan) -> None:
    scores = [{"log_id": LOG_ID, "evaluator_slug": "quality", "boolean_value": True}]
    result = await mcp.call_tool("upsert_log_scores", {"scores": scores, "dry_run": True})
    assert result.is_error and result.structured_content["valid"] == 0 and fake.writes() == []


@pytest.mark.slow
async def test_dry_run_batch_returns_by_its_deadline_with_the_rest_deferred(mcp: Client, fake: FakeRespan) -> None:
    fake.fail_next(200, {"count": 0, "next": None, "previous": None, "results": []}, delay=3)  # a lookup that hangs
    scores = [
        {"log_id": LOG_ID, "evaluator_slug": "quality", "numerical_value": 4},
        {"log_id": LOG_ID, "evaluator_slug": "quality", "boolean_value": True, "numerical_value": 1},
    ]
    result = await mcp.call_tool("upsert_log_scores", {"scores": scores, "dry_run": True, "deadline_seconds": 1})
    answer = result.structured_content
    assert [item["status"] for item in answer["results"]] == ["deferred", "invalid"]  # the core rules need no lookup
    assert (answer["valid"], answer["deferred"]) == (0, 1) and "not checked by the deadline: send them again with dry_run" in answer["next_step"]
    assert not result.is_error and fake.writes() == []


# -- pass/fail in write results ----------------------------------------------------------------------


async def test_upsert_result_carries_respans_verdict_and_the_condition(mcp: Client, fake: FakeRespan) -> None:
    passed = await mcp.call_tool("upsert_log_score", {"log_id": LOG_ID, "evaluator_slug": "quality", "numerical_value": 4})
    failed = await mcp.call_tool("upsert_log_score", {"log_id": LOG_ID, "evaluator_slug": "safe", "boolean_value": False})
    custom = await mcp.call_tool("upsert_log_score", {"log_id": LOG_ID, "evaluator_slug": "mine", "numerical_value": 4})
    assert passed.structured_content["is_passed"] is True  # computed by the API, not by us
    assert passed.structured_content["passing_condition"] == "numerical_value >= 3"
    assert passed.structured_content["evaluator_range"] == {"min": 1, "max": 5}
    assert failed.structured_content["is_passed"] is False
    assert failed.structured_content["passing_condition"] == "boolean_value == true"
    assert "passing_condition" not in custom.structured_content and "is_passed" not in custom.structured_content
    assert len(fake.writes()) == 3


async def test_update_result_carries_the_verdict_even_when_the_type_was_stated(mcp: Client, fake: FakeRespan) -> None:
    written = await mcp.call_tool("upsert_log_score", {"log_id": LOG_ID, "evaluator_id": "evl_q:2", "numerical_value": 4})
    score_id = written.structured_content["id"]
    updated = await mcp.call_tool(
        "update_score", {"score_id": score_id, "score_value_type": "numerical", "numerical_value": 2}
    )
    assert not updated.is_error, updated.content
    assert updated.structured_content["is_passed"] is False and fake.scores[score_id]["is_passed"] is False
    assert updated.structured_content["passing_condition"] == "numerical_value >= 3"


async def test_batch_scores_carry_the_verdict_and_the_condition(mcp: Client, fake: FakeRespan) -> None:
    scores = [
        {"log_id": LOG_ID, "evaluator_slug": "quality", "numerical_value": 2},
        {"log_id": LOG_ID, "evaluator_id": "evl_safe", "boolean_value": True},
        {"log_id": LOG_ID, "evaluator_slug": "plain", "numerical_value": 2},
    ]
    result = await mcp.call_tool("upsert_log_scores", {"scores": scores})
    assert not result.is_error, result.content
    written = [item["score"] for item in result.structured_content["results"]]
    assert [s.get("is_passed") for s in written] == [False, True, None]
    assert [s.get("passing_condition") for s in written] == ["numerical_value >= 3", "boolean_value == true", None]
    assert len(fake.writes()) == 3


async def test_list_log_scores_tells_each_scores_condition_range_and_choices(mcp: Client, fake: FakeRespan) -> None:
    for arguments in (
        {"evaluator_slug": "quality", "numerical_value": 4},
        {"evaluator_slug": "tone", "categorical_value": ["good"]},
        {"evaluator_slug": "mine", "string_value": "custom"},
    ):
        assert not (await mcp.call_tool("upsert_log_score", {"log_id": LOG_ID} | arguments)).is_error
    listed = await mcp.call_tool("list_log_scores", {"log_id": LOG_ID})
    assert not listed.is_error, listed.content
    by_slug = {s["evaluator_slug"]: s for s in listed.structured_content["scores"]}
    assert by_slug["quality"]["passing_condition"] == "numerical_value >= 3"
    assert by_slug["quality"]["evaluator_range"] == {"min": 1, "max": 5} and by_slug["quality"]["is_passed"] is True
    assert by_slug["tone"]["evaluator_choices"] == ["good", "bad"] and "evaluator_range" not in by_slug["tone"]
    assert not {"passing_condition", "evaluator_range", "evaluator_choices"} & set(by_slug["mine"])


async def test_list_log_scores_stands_when_a_lookup_fails(api: RunningFakeRespan, fake: FakeRespan) -> None:
    stored = {"id": "score_x", "log_id": LOG_ID, "numerical_value": 4.0, "evaluator_id": "evl_q:2", "is_passed": True}
    fake.fail_next(200, {"count": 1, "next": None, "previous": None, "results": [stored]}, method="GET")  # the page
    fake.fail_next(503, {"detail": "evaluators are down"}, method="GET")  # the evaluator lookup after it
    async with Client(build_server(Config(api_key=API_KEY, base_url=api.url, max_retries=0))) as client:
        listed = await client.call_tool("list_log_scores", {"log_id": LOG_ID})
    assert not listed.is_error, listed.content
    assert listed.structured_content["scores"] == [stored]  # as Respan gave it
    assert lookups(fake) == ["/api/evaluators/evl_q%3A2/"]  # it was tried


# -- schemas -----------------------------------------------------------------------------------------


async def test_every_tool_has_a_flat_output_schema_and_get_evaluator_is_read_only(mcp: Client) -> None:
    tools = {tool.name: tool for tool in (await mcp.list_tools()).tools}
    for tool in tools.values():
        assert tool.output_schema is not None, tool.name
        assert_flat(tool.input_schema)
        assert_flat(tool.output_schema)
    assert tools["get_evaluator"].annotations.read_only_hint is True
    for name in ("upsert_log_score", "update_score", "upsert_log_scores"):
        assert tools[name].input_schema["properties"]["dry_run"]["type"] == "boolean"
    item = tools["upsert_log_scores"].input_schema["properties"]["scores"]["items"]
    assert "dry_run" not in item["properties"]  # the batch decides, not an item
    assert "id" not in tools["upsert_log_score"].output_schema.get("required", [])  # a dry run has no score id
    assert tools["get_score"].output_schema["required"] == ["id"]


# -- over the installed console script ---------------------------------------------------------------


@pytest.mark.slow
async def test_over_stdio_get_evaluator_and_a_dry_run(api: RunningFakeRespan, fake: FakeRespan) -> None:
    parameters = StdioServerParameters(command=console_script(), env=server_env(api.url))
    async with Client(parameters) as client:
        got = await client.call_tool("get_evaluator", {"evaluator_slug": "quality"})
        dry = await client.call_tool(
            "upsert_log_score", {"log_id": LOG_ID, "evaluator_slug": "quality", "numerical_value": 2, "dry_run": True}
        )
        text = await prompt_text(client, evaluators="quality")
    assert got.structured_content == QUALITY
    assert dry.structured_content["dry_run"]["would_pass"] is False and fake.writes() == []
    assert RUBRIC in text


@pytest.mark.slow
async def test_over_streamable_http_self_grade_uses_the_callers_key_and_refuses_a_proxied_anonymous_one(
    api: RunningFakeRespan, fake: FakeRespan
) -> None:
    with http_server("--transport", "streamable-http", env=server_env(api.url)) as (port, _process):
        url = f"http://127.0.0.1:{port}/mcp"
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {CALLER_KEY}"}, timeout=60) as http:
            async with Client(streamable_http_client(url, http_client=http)) as client:
                text = await prompt_text(client, evaluators="quality, qualty")
                got = await client.call_tool("get_evaluator", {"evaluator_id": "evl_q:2"})
        assert RUBRIC in text and "no evaluator has slug 'qualty'" in text
        assert got.structured_content == QUALITY
        assert {r.headers["authorization"] for r in fake.requests} == {f"Bearer {CALLER_KEY}"}
        fake.requests.clear()
        async with httpx2.AsyncClient(headers={"X-Forwarded-For": "203.0.113.9"}, timeout=60) as http:
            async with Client(streamable_http_client(url, http_client=http)) as client:
                refused = await prompt_text(client, evaluators="quality")
        assert UNREACHABLE in refused and RUBRIC not in refused and fake.requests == []
