"""Over HTTP the server says where it listens, once it does: the URL a client connects to, health, whose key."""

from __future__ import annotations

import pytest

from tests.conftest import API_KEY, http_server, server_env, stop
from tests.fake_api import RunningFakeRespan

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("transport", "path"), [("streamable-http", "/mcp"), ("sse", "/sse")])
def test_the_start_line_names_the_url_health_and_whose_key(api: RunningFakeRespan, transport: str, path: str) -> None:
    with http_server("--transport", transport, env=server_env(api.url)) as (port, process):
        stop(process)
        said = process.stderr.read().decode() if process.stderr else ""
    (line,) = [line for line in said.splitlines() if line.startswith("respan-mcp: serving")]
    base = f"http://127.0.0.1:{port}"
    assert f"serving {transport} at {base}{path} " in line
    assert f"{base}/healthz" in line and f"{base}/readyz" in line
    assert "the server's key for callers on this machine" in line
    assert API_KEY not in said


def test_with_sign_in_the_start_line_says_so(api: RunningFakeRespan) -> None:
    env = server_env(api.url, RESPAN_OAUTH_ISSUER="http://127.0.0.1:9/issuer")
    with http_server("--transport", "streamable-http", env=env) as (_, process):
        stop(process)
        said = process.stderr.read().decode() if process.stderr else ""
    assert "callers sign in with http://127.0.0.1:9/issuer" in said
