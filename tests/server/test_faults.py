"""The fault matrix: every way the Respan API can fail, injected into the loopback stand-in,
driven through the MCP client (in-process, and over stdio with the installed console script).

Each fault must reach the agent as a tool error it can act on, be retried only where that is
safe and useful, and leave the session working for the next call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from respan_mcp.config import Config
from respan_mcp.server import build_server
from tests.conftest import API_KEY, console_script, free_port, server_env
from tests.fake_api import FakeRespan, RunningFakeRespan

pytestmark = pytest.mark.anyio

TIMEOUT = 1.0  # seconds the server waits for the API; the slow row answers after SLOW
SLOW = 2.0
RETRIES = 2
HTML_502 = (
    "<!DOCTYPE html><html><head><style>body{font:14px sans-serif}</style></head><body>"
    "<h1>502 Bad Gateway</h1><p>The upstream server returned an invalid response.</p>"
    + "<div class='trace'>" + "upstream connect error or disconnect/reset before headers " * 40 + "</div>"
    "<script>window.reportError && reportError('gateway')</script></body></html>"
)


@dataclass
class Fault:
    """One row: what the API does, what the agent sends, and what must follow."""

    name: str
    inject: Callable[[FakeRespan], None]
    arguments: dict[str, Any]
    says: tuple[str, ...] = ()  # the agent's text must contain each of these
    requests: int = 1  # API requests the call makes (writes and reads)
    recovered: bool = False  # the call succeeds in the end
    tool: str = "upsert_log_score"
    not_said: tuple[str, ...] = field(default=("Traceback", "<html", "<h1", "<script"))


def write(log_id: str, **extra: Any) -> dict[str, Any]:
    return {"log_id": log_id, "evaluator_slug": "quality", "score_value_type": "numerical", "numerical_value": 4} | extra


def recovers(
    name: str, status: int, body: dict[str, Any], log_id: str, *, times: int = 1, headers: dict[str, str] | None = None
) -> Fault:
    """A write to `log_id` answered `status` `times` over and then stored: one request more than the faults."""
    return Fault(
        name,
        lambda fake: fake.fail_next(status, body, headers=headers, times=times, method="POST"),
        write(log_id),
        requests=times + 1,
        recovered=True,
    )


FAULTS = [
    recovers("503 twice, then success", 503, {"detail": "Service temporarily unavailable."}, "log-503", times=2),
    recovers("429 with retry_after 1", 429, {"detail": "Rate limit exceeded", "retry_after": 1}, "log-429"),
    Fault(
        "429 with retry_after 300",
        lambda fake: fake.fail_next(429, {"detail": "Rate limit exceeded", "retry_after": 300}, method="POST"),
        write("log-1"),
        says=("rate limit", "300 s"),
    ),
    Fault(
        "401",
        lambda fake: fake.fail_next(401, {"detail": "Invalid API key."}, method="POST"),
        write("log-1"),
        says=("rejected the API key", "Invalid API key", "RESPAN_API_KEY"),
    ),
    Fault("404 log", lambda fake: None, write("no-such-log"), says=("Log not found", "no-such-log")),
    Fault(
        "404 score",
        lambda fake: None,
        {"score_id": "score_missing", "numerical_value": 1},
        says=("Score not found", "score_missing"),
        tool="update_score",
    ),
    Fault(
        "400 field errors",
        lambda fake: fake.fail_next(
            400, {"numerical_value": ["Ensure this value is less than or equal to 5."]}, method="POST"
        ),
        write("log-1"),
        says=("numerical_value: Ensure this value is less than or equal to 5.",),
    ),
    Fault(
        "persistent HTML 502",
        lambda fake: fake.fail_next(502, HTML_502, times=RETRIES + 1, method="POST"),
        write("log-1"),
        says=("502", "Bad Gateway"),
        requests=RETRIES + 1,
    ),
    Fault(
        "slower than the timeout, every try",
        lambda fake: fake.fail_next(201, {"id": "late"}, delay=SLOW, times=RETRIES + 1, method="POST"),
        write("log-1"),
        says=(f"within {TIMEOUT:g} s", "may or may not have been written", "safe"),
        requests=RETRIES + 1,  # sent but unanswered: tried again (writes are idempotent), each try bounded
    ),
    recovers("500 twice, then success", 500, {"detail": "Internal server error."}, "log-503", times=2),
    recovers("429 with an unreadable Retry-After", 429, {"detail": "Rate limit exceeded"}, "log-429",
             headers={"Retry-After": "soon"}),
    Fault(
        "redirect",
        lambda fake: fake.fail_next(
            302, None, headers={"Location": "https://login.elsewhere.example/sso?next=/api"}, method="POST"
        ),
        write("log-1"),
        says=("base URL redirects", "RESPAN_BASE_URL", "login.elsewhere.example"),
    ),
    Fault(
        "answer larger than 4 MiB",
        lambda fake: fake.fail_next(200, "x" * (5 * 1024 * 1024), method="POST"),
        write("log-1"),
        says=("larger than 4 MiB", "not read to the end", "went through"),
        not_said=("Traceback", "<html", "could not reach", "xxxxxxxx"),
    ),
    Fault(
        "400 with Respan's request id",
        lambda fake: fake.fail_next(
            400, {"numerical_value": ["A valid number is required."]}, headers={"X-Request-ID": "req_5f2a9c"},
            method="POST",
        ),
        write("log-1"),
        says=("A valid number is required.", "request id req_5f2a9c"),
    ),
]


@pytest.fixture
def fake(fake: FakeRespan) -> FakeRespan:
    """Logs named for the faults the stdio rows inject."""
    for log_id in ("log-503", "log-429"):
        fake.add_log(log_id)
    return fake


def in_memory(api_url: str, **settings: Any) -> Client:
    config = Config(api_key=API_KEY, base_url=api_url, timeout=TIMEOUT, max_retries=RETRIES)
    return Client(build_server(config.with_overrides(**settings)))


async def check_row(client: Client, fake: FakeRespan, fault: Fault) -> None:
    """Inject the fault, make the call, and check what the agent saw and what reached the API."""
    await warm_up(client, fake)
    before = len(fake.requests)
    fault.inject(fake)
    with anyio.fail_after(60):  # bounded: no fault may hang a call
        result = await client.call_tool(fault.tool, fault.arguments)
    sent = fake.requests[before:]
    text = result.content[0].text
    assert len(sent) == fault.requests, (fault.name, [(r.method, r.path) for r in sent])
    if fault.recovered:
        assert not result.is_error, (fault.name, text)
        log_id = fault.arguments["log_id"]
        assert [s["numerical_value"] for s in fake.scores.values() if s["log_id"] == log_id] == [4.0]
        return
    assert result.is_error, (fault.name, text)
    assert result.structured_content is None
    for words in fault.says:
        assert words.lower() in text.lower(), (fault.name, text)
    for words in fault.not_said:
        assert words not in text, (fault.name, text)
    assert "\n" not in text and len(text) <= 300, (fault.name, len(text), text)
    # The session is still up: the next call works.
    again = await client.call_tool("upsert_log_score", write("log-1", numerical_value=3))
    assert not again.is_error, (fault.name, again.content)


async def warm_up(client: Client, fake: FakeRespan) -> None:
    """One good call first, so the evaluator lookup is cached and a row's requests are its own."""
    result = await client.call_tool("upsert_log_score", write("log-1"))
    assert not result.is_error, result.content
    fake.scores.clear()


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
async def test_fault_reaches_the_agent_as_a_tool_error(fault: Fault, api: RunningFakeRespan, fake: FakeRespan) -> None:
    async with in_memory(api.url) as client:
        await check_row(client, fake, fault)


@pytest.mark.slow  # starts the console script
async def test_every_fault_over_one_stdio_session(api: RunningFakeRespan, fake: FakeRespan) -> None:
    """The whole matrix in one stdio session, set up by environment variables: it stays up throughout."""
    env = server_env(api.url, RESPAN_TIMEOUT=f"{TIMEOUT:g}", RESPAN_MAX_RETRIES=str(RETRIES))
    async with Client(StdioServerParameters(command=console_script(), args=[], env=env)) as client:
        for fault in FAULTS:
            await check_row(client, fake, fault)


async def test_a_real_wrong_key_makes_exactly_one_request(fake: FakeRespan) -> None:
    with RunningFakeRespan(FakeRespan(api_keys=("another-key",))) as other:
        async with in_memory(other.url) as client:
            result = await client.call_tool("upsert_log_score", write("log-1"))
            assert len(other.fake.requests) == 1
    assert result.is_error
    assert "rejected the API key" in result.content[0].text and "RESPAN_API_KEY" in result.content[0].text


@pytest.mark.parametrize("how", ["in-memory", pytest.param("stdio", marks=pytest.mark.slow)])
async def test_connection_refused_names_the_host(how: str, api: RunningFakeRespan) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    if how == "in-memory":
        session = in_memory(nowhere, max_retries=1)
    else:
        env = server_env(nowhere, RESPAN_MAX_RETRIES="1")
        session = Client(StdioServerParameters(command=console_script(), args=[], env=env))
    async with session as client:
        with anyio.fail_after(60):
            result = await client.call_tool("upsert_log_score", write("log-1"))
        again = await client.call_tool("list_log_scores", {"log_id": "log-1"})
    assert result.is_error
    assert nowhere in result.content[0].text and "RESPAN_BASE_URL" in result.content[0].text
    assert again.is_error and nowhere in again.content[0].text  # still answering


@pytest.mark.slow  # starts the console script
async def test_max_retries_flag_wins_over_the_environment(api: RunningFakeRespan, fake: FakeRespan) -> None:
    fake.fail_next(503, {"detail": "down"}, times=5, method="POST")
    env = server_env(api.url, RESPAN_MAX_RETRIES="4")
    params = StdioServerParameters(command=console_script(), args=["--max-retries", "1"], env=env)
    async with Client(params) as client:
        result = await client.call_tool("upsert_log_score", write("log-1"))
    assert result.is_error and "503" in result.content[0].text
    assert len(fake.writes()) == 2  # the first try and one retry


@pytest.mark.slow  # starts the console script
async def test_timeout_flag_bounds_each_request(api: RunningFakeRespan, fake: FakeRespan) -> None:
    fake.fail_next(201, {"id": "late"}, delay=1.5, times=4, method="POST")
    env = server_env(api.url, RESPAN_TIMEOUT="30")
    params = StdioServerParameters(command=console_script(), args=["--timeout", "0.5"], env=env)
    async with Client(params) as client:
        with anyio.fail_after(20):  # the environment's 30 s would blow this; the flag's 0.5 s does not
            result = await client.call_tool("upsert_log_score", write("log-1"))
    assert result.is_error and "within 0.5 s" in result.content[0].text
    # The default 3 retries, each try cut at the flag's 0.5 s: a timed-out write is retried (it is idempotent).
    assert len(fake.writes()) == 4


@pytest.mark.parametrize("base_url", ["ftp://example.com", "not a url"])
async def test_a_base_url_that_is_not_http_fails_at_once(base_url: str, caplog: pytest.LogCaptureFixture) -> None:
    async with in_memory(base_url, max_retries=3) as client:
        result = await client.call_tool("upsert_log_score", write("log-1"))
    assert result.is_error
    assert f"RESPAN_BASE_URL '{base_url}' is not an http(s) URL" in result.content[0].text
    assert "retry" not in caplog.text  # nothing to wait for: a setting is wrong, not the network
