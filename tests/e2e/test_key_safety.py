"""The API key never shows: a distinctive canary key is run down every error path, and every
tool result, the server's DEBUG log on stderr, `repr(config)` and `--help` are searched for it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult

from respan_mcp.config import load_config
from tests.conftest import console_script, free_port, server_env
from tests.fake_api import FakeRespan, RunningFakeRespan
from tests.server.test_faults import FAULTS, TIMEOUT, write

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CANARY = "rk-CANARY-9f3b7e51c0d2a8"
# The key, or a recognisable piece of it (a wrapped log line may split it).
PIECES = (CANARY, "CANARY", "9f3b7e51c0d2a8")

# Error bodies that echo the token back, as some servers and proxies do.
ECHOES = [
    lambda fake: fake.fail_next(401, {"detail": f"Invalid token {CANARY}."}, method="PATCH"),
    lambda fake: fake.fail_next(400, {"numerical_value": [f"Refused for Bearer {CANARY}"]}, method="PATCH"),
    lambda fake: fake.fail_next(403, {"error": f"key {CANARY} may not write"}, method="PATCH"),
    lambda fake: fake.fail_next(502, f"<html><title>Bad Gateway {CANARY}</title></html>", times=3, method="PATCH"),
    lambda fake: fake.fail_next(404, {"detail": f"Not found for {CANARY}"}, method="GET"),
]
INVALID_CALLS = [
    ("upsert_log_score", {"log_id": "log-1", "evaluator_slug": "q", "score_value_type": "boolean", "numerical_value": 1}),
    ("upsert_log_score", {"log_id": "log-1", "evaluator_slug": "q", "numerical_value": 1, "boolean_value": True}),
    ("upsert_log_score", {"log_id": "log-1", "numerical_value": float("nan")}),
    ("upsert_log_score", {"log_id": "..", "evaluator_slug": "q", "numerical_value": 1}),
    ("upsert_log_score", {"evaluator_slug": "q", "unknown": 1}),
    ("update_score", {"score_id": 7, "numerical_value": "high"}),
    ("upsert_log_scores", {"scores": [{"log_id": "log-1"}, {"log_id": "no-such-log", "evaluator_slug": "q", "numerical_value": 1}]}),
    ("get_score", {"score_id": "score_missing"}),
    ("list_log_scores", {"log_id": "log-1", "page_size": "many"}),
    ("list_evaluators", {"page_size": 10_000}),
]


def assert_no_canary(text: str, where: str) -> None:
    for piece in PIECES:
        assert piece not in text, f"the key leaked into {where}"


def result_text(result: CallToolResult) -> str:
    return json.dumps([block.model_dump(mode="json") for block in result.content]) + json.dumps(result.structured_content)


@pytest.fixture
def fake(fake: FakeRespan) -> FakeRespan:
    """Only the canary key is accepted; logs named for the faults."""
    fake.api_keys = {CANARY}
    for log_id in ("log-503", "log-429"):
        fake.add_log(log_id)
    return fake


async def run_stdio(env: dict[str, str], calls: Any, stderr: Path) -> list[str]:
    """Start the console script at DEBUG, hand the client to `calls`, and return every result's text.

    COLUMNS is huge so the log handler never wraps a line (a wrapped key could hide from a search).
    """
    params = StdioServerParameters(
        command=console_script(), args=["--log-level", "DEBUG"], env=env | {"COLUMNS": "100000"}
    )
    texts: list[str] = []
    with stderr.open("a") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            async def call(tool: str, arguments: dict[str, Any]) -> CallToolResult:
                with anyio.fail_after(60):
                    result = await client.call_tool(tool, arguments)
                texts.append(result_text(result))
                return result

            await calls(call)
    return texts


async def test_the_key_never_shows_on_any_path(tmp_path: Path, api: RunningFakeRespan, fake: FakeRespan) -> None:
    stderr = tmp_path / "stderr.txt"

    async def every_path(call: Any) -> None:
        ok = await call("upsert_log_score", write("log-1"))
        assert not ok.is_error
        await call("update_score", {"score_id": ok.structured_content["id"], "numerical_value": 2})
        for fault in FAULTS:
            fault.inject(fake)
            assert (await call(fault.tool, fault.arguments)).is_error is not fault.recovered
        for echo in ECHOES:
            echo(fake)
            assert (await call("update_score", {"score_id": ok.structured_content["id"], "numerical_value": 1})).is_error
        for tool, arguments in INVALID_CALLS:
            assert (await call(tool, arguments)).is_error

    env = server_env(api.url, RESPAN_API_KEY=CANARY, RESPAN_TIMEOUT=f"{TIMEOUT:g}", RESPAN_MAX_RETRIES="2")
    texts = await run_stdio(env, every_path, stderr)
    assert len(texts) == 2 + len(FAULTS) + len(ECHOES) + len(INVALID_CALLS)
    for text in texts:
        assert_no_canary(text, f"a tool result: {text[:200]}")
    log = stderr.read_text()
    assert "DEBUG" in log and "HTTP Request" in log  # it really logged at DEBUG
    assert_no_canary(log, "the DEBUG log on stderr")
    assert any(r.headers.get("authorization") == f"Bearer {CANARY}" for r in fake.requests)  # and was really used


async def test_bad_base_url_never_shows_the_key(tmp_path: Path) -> None:
    """A base URL nothing listens on. (One that is not a URL is refused at start: tests/unit/test_config.py.)"""
    stderr = tmp_path / "stderr.txt"
    base_url = f"http://127.0.0.1:{free_port()}"

    async def calls(call: Any) -> None:
        assert (await call("upsert_log_score", write("log-1"))).is_error
        assert (await call("list_evaluators", {})).is_error

    env = server_env(base_url, RESPAN_API_KEY=CANARY, RESPAN_MAX_RETRIES="0")
    for text in await run_stdio(env, calls, stderr):
        assert_no_canary(text, "a tool result")
    assert_no_canary(stderr.read_text(), "the DEBUG log on stderr")


async def test_missing_key_with_a_canary_in_another_profile(tmp_path: Path, api: RunningFakeRespan) -> None:
    (tmp_path / ".respan").mkdir()
    (tmp_path / ".respan" / "credentials.json").write_text(
        json.dumps({"work": {"type": "api_key", "apiKey": CANARY, "baseUrl": api.url}})
    )
    stderr = tmp_path / "stderr.txt"

    async def calls(call: Any) -> None:
        result = await call("upsert_log_score", write("log-1"))
        assert result.is_error and "RESPAN_API_KEY" in result.content[0].text

    env = {"PATH": "", "HOME": str(tmp_path), "RESPAN_BASE_URL": api.url}  # profile "default" has no key
    for text in await run_stdio(env, calls, stderr):
        assert_no_canary(text, "a tool result")
    log = stderr.read_text()
    assert "no profile" in log
    assert_no_canary(log, "the DEBUG log on stderr")


def test_config_repr_and_help_never_show_the_key() -> None:
    config = load_config({"RESPAN_API_KEY": CANARY, "HOME": "/nonexistent"})
    assert config.api_key == CANARY
    assert_no_canary(repr(config), "repr(config)")
    assert_no_canary(str(config), "str(config)")
    shown = subprocess.run(
        [console_script(), "--help"],
        env={"PATH": "", "RESPAN_API_KEY": CANARY, "COLUMNS": "100000"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0 and "RESPAN_API_KEY" in shown.stdout
    assert_no_canary(shown.stdout + shown.stderr, "--help")
