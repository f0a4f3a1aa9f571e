"""Load through one stdio session: 2,000 score writes, 50 in flight at once, every one answered
and every score stored exactly once."""

from __future__ import annotations

from collections import Counter

import anyio
import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import API_KEY, console_script, server_env
from tests.fake_api import FakeRespan, RunningFakeRespan

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CALLS = 2_000
IN_FLIGHT = 50


async def test_2000_concurrent_writes_through_one_stdio_session() -> None:
    fake = FakeRespan(api_keys=(API_KEY,), accept_any_log=True, rate_limit_per_minute=None)  # no 429s here
    failures: list[str] = []
    with RunningFakeRespan(fake) as api:
        params = StdioServerParameters(command=console_script(), args=[], env=server_env(api.url))
        async with Client(params) as client:
            slots = anyio.Semaphore(IN_FLIGHT)

            async def write(n: int) -> None:
                async with slots:
                    result = await client.call_tool(
                        "upsert_log_score",
                        {"log_id": f"load-{n}", "evaluator_slug": "load", "score_value_type": "numerical", "numerical_value": n},
                    )
                if result.is_error or result.structured_content["log_id"] != f"load-{n}":
                    failures.append(f"{n}: {result.content[0].text[:200]}")

            with anyio.fail_after(300):
                async with anyio.create_task_group() as group:
                    for n in range(CALLS):
                        group.start_soon(write, n)

    assert failures == []
    posts = Counter(r.path for r in fake.requests if r.method == "POST")
    assert len(posts) == CALLS and set(posts.values()) == {1}  # each log written once, none retried
    stored = Counter(score["log_id"] for score in fake.scores.values())
    assert len(stored) == CALLS and set(stored.values()) == {1}
    assert sorted(score["numerical_value"] for score in fake.scores.values()) == list(range(CALLS))
