"""RespanClient and Config against a mocked transport: what is sent, and how failures read."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx2
import pytest

from respan_mcp.client import RespanClient, path_segment
from respan_mcp.config import DEFAULT_BASE_URL, Config, load_config, normalise_base_url
from respan_mcp.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    InvalidIdError,
    MissingAPIKeyError,
    NotFoundError,
    RateLimitError,
    ServerError,
)

pytestmark = pytest.mark.anyio


KEY = "sk-canary-7f3e9"
SCORE = {"id": "score_1", "created_at": "2026-11-24T00:00:00Z", "numerical_value": 4.0}

Handler = Callable[[httpx2.Request], httpx2.Response]


def client_with(*answers: httpx2.Response | Exception, **config: object) -> tuple[RespanClient, list[httpx2.Request]]:
    """A client whose transport answers in turn with `answers`; returns the requests it saw."""
    seen: list[httpx2.Request] = []
    queue = list(answers)

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    settings = {"api_key": KEY, "max_retries": 3} | config
    return RespanClient(Config(**settings), transport=httpx2.MockTransport(handler)), seen  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("https://api.respan.ai", "https://api.respan.ai"),
        ("https://api.respan.ai/", "https://api.respan.ai"),
        ("https://api.respan.ai/api", "https://api.respan.ai"),
        ("https://api.respan.ai/api/", "https://api.respan.ai"),
        ("https://endpoint.respan.ai/api", "https://endpoint.respan.ai"),
        ("  http://127.0.0.1:9000/  ", "http://127.0.0.1:9000"),
    ],
)
def test_base_url_normalised(raw: str, expected: str) -> None:
    assert normalise_base_url(raw) == expected


def test_both_base_url_variables_work() -> None:
    assert load_config({"RESPAN_BASE_URL": "https://a.example/api"}).base_url == "https://a.example"
    assert load_config({"RESPAN_API_BASE_URL": "https://b.example"}).base_url == "https://b.example"
    assert load_config({}).base_url == DEFAULT_BASE_URL
    assert load_config({}).api_url == f"{DEFAULT_BASE_URL}/api"


def test_config_repr_hides_key() -> None:
    config = load_config({"RESPAN_API_KEY": KEY})
    assert config.api_key == KEY
    assert KEY not in repr(config) and KEY not in str(config)


async def test_upsert_sends_bearer_key_user_agent_and_slash() -> None:
    client, seen = client_with(httpx2.Response(201, json=SCORE))
    assert await client.upsert_log_score("log-1", {"evaluator_slug": "q", "numerical_value": 4}) == SCORE
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == "https://api.respan.ai/api/logs/log-1/scores/"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["user-agent"].startswith("respan-mcp/")
    assert json.loads(request.content) == {"evaluator_slug": "q", "numerical_value": 4}


async def test_update_patches_score_path() -> None:
    client, seen = client_with(httpx2.Response(200, json=SCORE))
    await client.update_score("score_1", {"numerical_value": 5})
    assert (seen[0].method, seen[0].url.raw_path) == ("PATCH", b"/api/scores/score_1/")


async def test_per_call_key_wins() -> None:
    client, seen = client_with(httpx2.Response(200, json=SCORE))
    await client.update_score("s", {"numerical_value": 1}, api_key="caller-key")
    assert seen[0].headers["authorization"] == "Bearer caller-key"


@pytest.mark.parametrize("log_id", ["../x", "a/b", "a?b=c", "a#b", "%2e%2e", "x/../../admin", "..."])
async def test_hostile_ids_stay_in_their_segment(log_id: str) -> None:
    client, seen = client_with(httpx2.Response(201, json=SCORE))
    await client.upsert_log_score(log_id, {"evaluator_slug": "q", "numerical_value": 1})
    raw = seen[0].url.raw_path.decode()
    assert raw.startswith("/api/logs/") and raw.endswith("/scores/")
    segment = raw.removeprefix("/api/logs/").removesuffix("/scores/")
    assert "/" not in segment and segment not in (".", "..") and "?" not in raw
    assert segment == path_segment(log_id)


@pytest.mark.parametrize("log_id", ["..", "."])
async def test_dot_segment_ids_are_refused_unsent(log_id: str) -> None:
    client, seen = client_with(httpx2.Response(201, json=SCORE))
    with pytest.raises(InvalidIdError, match="not a Respan id"):
        await client.upsert_log_score(log_id, {"evaluator_slug": "q", "numerical_value": 1})
    assert seen == []


async def test_missing_key_sends_nothing() -> None:
    client, seen = client_with(httpx2.Response(201, json=SCORE), api_key=None)
    with pytest.raises(MissingAPIKeyError, match="RESPAN_API_KEY"):
        await client.upsert_log_score("l", {"evaluator_slug": "q", "numerical_value": 1})
    assert seen == []


async def test_401_is_not_retried_and_says_key_rejected() -> None:
    client, seen = client_with(httpx2.Response(401, json={"detail": "Invalid API key."}))
    with pytest.raises(AuthenticationError, match="rejected the API key.*Invalid API key.*RESPAN_API_KEY") as err:
        await client.upsert_log_score("l", {"evaluator_slug": "q", "numerical_value": 1})
    assert len(seen) == 1 and KEY not in str(err.value)


async def test_404_names_the_log_and_is_not_retried() -> None:
    client, seen = client_with(httpx2.Response(404, json={"detail": "Log not found."}))
    with pytest.raises(NotFoundError, match="Log not found.*log_id 'nope'"):
        await client.upsert_log_score("nope", {"evaluator_slug": "q", "numerical_value": 1})
    assert len(seen) == 1


@pytest.mark.parametrize(
    "body, expected",
    [
        ({"numerical_value": ["A valid number is required."]}, "numerical_value: A valid number is required."),
        (
            {"detail": "Validation error", "errors": {"evaluator": ["Provide either evaluator_id or evaluator_slug."]}},
            "evaluator: Provide either evaluator_id or evaluator_slug.",
        ),
        ({"non_field_errors": ["At least one score value is required."]}, "(400 Bad Request: At least one"),
        ({"error": "bad thing"}, "bad thing"),
    ],
)
async def test_400_passes_on_the_api_field_messages(body: dict, expected: str) -> None:
    client, seen = client_with(httpx2.Response(400, json=body))
    with pytest.raises(BadRequestError) as err:
        await client.upsert_log_score("l", {"evaluator_slug": "q", "numerical_value": 1})
    assert expected in str(err.value) and len(seen) == 1


async def test_503_twice_then_success_recovers() -> None:
    client, seen = client_with(
        httpx2.Response(503, text="busy"), httpx2.Response(503, text="busy"), httpx2.Response(201, json=SCORE)
    )
    assert await client.upsert_log_score("l", {"evaluator_slug": "q", "numerical_value": 1}) == SCORE
    assert len(seen) == 3


async def test_html_502_summarised_after_bounded_retries() -> None:
    page = "<html><head><title>502 Bad Gateway</title><style>x{}</style></head><body>" + "<p>nginx</p>" * 500
    client, seen = client_with(httpx2.Response(502, text=page, headers={"content-type": "text/html"}), max_retries=2)
    with pytest.raises(ServerError) as err:
        await client.upsert_log_score("l", {"evaluator_slug": "q", "numerical_value": 1})
    assert len(seen) == 3
    assert "502 Bad Gateway" in str(err.value) and "<" not in str(err.value) and len(str(err.value)) < 400


async def test_429_waits_retry_after_from_body() -> None:
    client, seen = client_with(
        httpx2.Response(429, json={"detail": "Rate limit exceeded", "retry_after": 0.01}),
        httpx2.Response(201, json=SCORE),
    )
    assert await client.upsert_log_score("l", {"evaluator_slug": "q", "numerical_value": 1}) == SCORE
    assert len(seen) == 2


async def test_429_with_long_wait_fails_fast_saying_when() -> None:
    client, seen = client_with(
        httpx2.Response(429, json={"detail": "Rate limit exceeded", "retry_after": 300}, headers={"Retry-After": "300"})
    )
    with pytest.raises(RateLimitError, match="retry after 300 s") as err:
        await client.upsert_log_score("l", {"evaluator_slug": "q", "numerical_value": 1})
    assert len(seen) == 1 and err.value.retry_after == 300


async def test_read_timeout_says_write_may_have_happened() -> None:
    client, seen = client_with(httpx2.ReadTimeout("slow"), timeout=0.5)
    with pytest.raises(APITimeoutError, match="may or may not have been written.*safe"):
        await client.upsert_log_score("l", {"evaluator_slug": "q", "numerical_value": 1})
    assert len(seen) == 1


async def test_connection_error_names_host_after_retries() -> None:
    client, seen = client_with(httpx2.ConnectError("refused"), max_retries=1, base_url="http://127.0.0.1:9")
    with pytest.raises(APIConnectionError, match=r"http://127\.0\.0\.1:9"):
        await client.upsert_log_score("l", {"evaluator_slug": "q", "numerical_value": 1})
    assert len(seen) == 2


async def test_non_json_success_is_an_error() -> None:
    client, _ = client_with(httpx2.Response(200, text="<html>login page</html>"))
    with pytest.raises(ServerError, match="not JSON"):
        await client.upsert_log_score("l", {"evaluator_slug": "q", "numerical_value": 1})
