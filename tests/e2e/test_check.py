"""`respan-mcp --check`: one read-only request, one line naming the API asked, never the key."""

from __future__ import annotations

import subprocess

import httpx2
import pytest

from respan_mcp.check import check
from respan_mcp.config import Config
from tests.conftest import API_KEY, console_script, server_env
from tests.fake_api import RunningFakeRespan

KEY = "sk-check-canary-7c1d2e3f4a5b"


def asked_with(status: int, body: object) -> tuple[list[httpx2.Request], httpx2.MockTransport]:
    seen: list[httpx2.Request] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(status, json=body)

    return seen, httpx2.MockTransport(answer)


@pytest.mark.parametrize(
    ("status", "body", "code", "said"),
    [
        (200, {"count": 7, "next": None, "previous": None, "results": []}, 0, "the key works with https://api.respan.ai/api: it sees 7 evaluators."),
        (401, {"detail": "Invalid API key."}, 1, "refused the key (401)"),
        (403, {"detail": "No permission."}, 1, "may not read evaluators (403)"),
        (404, {"detail": "Not found."}, 1, "answered 404"),
        (503, {"detail": "down"}, 1, "did not accept the check"),
    ],
)
def test_check_names_the_api_and_says_what_to_do(status: int, body: object, code: int, said: str) -> None:
    seen, transport = asked_with(status, body)
    result, line = check(Config(api_key=KEY), transport)
    assert result == code and said in line and "https://api.respan.ai/api" in line
    assert [(r.method, r.url.path) for r in seen] == [("GET", "/api/evaluators/")]  # one read, nothing written
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"
    for start in range(len(KEY) - 7):
        assert KEY[start : start + 8] not in line


def test_check_without_a_key_says_where_keys_are_looked_for() -> None:
    result, line = check(Config(api_key=None))
    assert result == 1 and "RESPAN_API_KEY" in line and "respan login" in line


def test_check_with_no_answer_says_so() -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused")

    result, line = check(Config(api_key=KEY, base_url="http://127.0.0.1:9"), httpx2.MockTransport(refuse))
    assert result == 1 and line.startswith("no answer from http://127.0.0.1:9/api")


@pytest.mark.slow
def test_console_check_good_and_bad_key(api: RunningFakeRespan) -> None:
    good = subprocess.run([console_script(), "--check"], env=server_env(api.url), capture_output=True, text=True, timeout=60)
    assert good.returncode == 0 and "the key works with" in good.stdout and api.url in good.stdout, good
    bad = subprocess.run(
        [console_script(), "--check"], env=server_env(api.url, RESPAN_API_KEY="wrong-key-123456789"),
        capture_output=True, text=True, timeout=60,
    )
    assert bad.returncode == 1 and "refused the key (401)" in bad.stdout and "wrong-key" not in bad.stdout + bad.stderr
    assert API_KEY not in good.stdout + good.stderr
    assert not api.fake.writes()
