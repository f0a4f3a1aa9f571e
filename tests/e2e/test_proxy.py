"""Two streamable HTTP replicas behind a real nginx, as a team would run them.

nginx comes from the distribution (`apt-get install nginx-light`); without it these tests
are skipped with a notice. The config written here is the one docs/team.md describes.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import API_KEY, free_port, server_env, wait_healthy
from tests.e2e.test_http import KEY_A, KEY_B, Replica, mcp_client, replica
from tests.fake_api import FakeRespan, RunningFakeRespan
from tests.oidc_fixture import CLIENT, OpenIdProvider, oidc_provider  # noqa: F401  (the `oidc` fixture)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None)
if NGINX is None:
    print("test_proxy: nginx not found (apt-get install nginx-light); skipping the reverse-proxy tests")
    pytest.skip("nginx not found (apt-get install nginx-light)", allow_module_level=True)

NGINX_CONF = """\
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 512; }}
http {{
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    log_format upstream '$request_id $request_method $uri $status $upstream_addr $upstream_status';
    access_log {tmp}/access.log upstream;

    upstream respan_mcp {{
        server 127.0.0.1:{first};
        server 127.0.0.1:{second};
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://respan_mcp;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host localhost;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Request-ID $request_id;
            proxy_buffering off;
            proxy_read_timeout 300s;
            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
        }}
    }}
}}
"""


@dataclass
class Stack:
    url: str
    replicas: list[Replica]
    access_log: Path


@contextmanager
def behind_nginx(tmp_path: Path, api_url: str, *flags: str, port: int | None = None) -> Iterator[Stack]:
    """Two replicas (json logs) on free loopback ports, round-robin behind nginx on `port` (default: any free one)."""
    env = server_env(api_url, RESPAN_LOG_FORMAT="json")
    with ExitStack() as stack:
        replicas = [
            stack.enter_context(replica(tmp_path, "--transport", "streamable-http", *flags, env=env)) for _ in range(2)
        ]
        port = port or free_port()
        conf = tmp_path / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=tmp_path, first=replicas[0].port, second=replicas[1].port, port=port))
        nginx = subprocess.Popen(
            [NGINX, "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            said = lambda: nginx.stderr.read().decode()  # type: ignore[union-attr]  # noqa: E731
            wait_healthy(f"http://127.0.0.1:{port}/healthz", nginx, said)
            yield Stack(f"http://127.0.0.1:{port}", replicas, tmp_path / "access.log")
        finally:
            nginx.send_signal(signal.SIGQUIT)
            try:
                nginx.wait(timeout=15)
            except subprocess.TimeoutExpired:
                nginx.kill()
                nginx.wait()


def tool_calls(server: Replica) -> list[str]:
    return [line for line in server.stderr().splitlines() if '"event": "tool_call"' in line]


@pytest.fixture
def fake(fake: FakeRespan) -> FakeRespan:
    """Both callers' keys; any log is known."""
    fake.api_keys |= {KEY_A, KEY_B}
    fake.accept_any_log = True
    return fake


async def test_one_session_spreads_over_both_replicas_and_keys_stay_per_caller(
    tmp_path: Path, api: RunningFakeRespan, fake: FakeRespan
) -> None:
    with behind_nginx(tmp_path, api.url) as proxy:
        async with mcp_client(proxy.url, Authorization=f"Bearer {KEY_A}") as client:
            assert "upsert_log_score" in {tool.name for tool in (await client.list_tools()).tools}
            ids = []
            for n in range(4):
                written = await client.call_tool(
                    "upsert_log_score", {"log_id": f"log-{n}", "evaluator_slug": "helpfulness", "numerical_value": n}
                )
                assert not written.is_error, written.content
                ids.append(written.structured_content["id"])
            for n, score_id in enumerate(ids):
                read = await client.call_tool("get_score", {"score_id": score_id})
                assert not read.is_error and read.structured_content["numerical_value"] == n, read.content
        async with mcp_client(proxy.url, Authorization=f"Bearer {KEY_B}") as other:
            assert not (await other.call_tool("upsert_log_score", {"log_id": "log-0", "evaluator_slug": "helpfulness", "numerical_value": 9})).is_error
        async with mcp_client(proxy.url) as anonymous:
            refused = await anonymous.call_tool("upsert_log_score", {"log_id": "log-0", "evaluator_slug": "h", "numerical_value": 1})
        per_replica = [tool_calls(server) for server in proxy.replicas]
        upstreams = {line.split()[4] for line in proxy.access_log.read_text().splitlines() if " /mcp " in line}

    assert all(per_replica), per_replica  # consecutive calls of one session landed on both replicas
    assert sum(map(len, per_replica)) == 10
    assert upstreams == {f"127.0.0.1:{server.port}" for server in proxy.replicas}
    writes = fake.writes()
    assert [w.headers["authorization"] for w in writes] == [f"Bearer {KEY_A}"] * 4 + [f"Bearer {KEY_B}"]
    assert all(w.headers.get("x-forwarded-for") is None for w in writes)  # proxy headers stop at the replica
    assert refused.is_error and "through a proxy" in refused.content[0].text
    assert len(fake.writes()) == 5  # the anonymous call sent nothing
    assert f"Bearer {API_KEY}" not in {r.headers.get("authorization") for r in fake.requests}


async def test_allow_server_key_and_sigterm_during_a_stream_of_calls(
    tmp_path: Path, api: RunningFakeRespan, fake: FakeRespan
) -> None:
    fake.latency = 0.05  # calls are in flight when the signal lands
    count = 24
    with behind_nginx(tmp_path, api.url, "--allow-server-key") as proxy:
        answers: dict[int, object] = {}
        stopped = anyio.Event()

        async def stream(worker: int) -> None:
            async with mcp_client(proxy.url) as client:  # anonymous: allowed by --allow-server-key
                for n in range(worker, count, 2):
                    answers[n] = await client.call_tool(
                        "upsert_log_score", {"log_id": f"log-{n}", "evaluator_slug": "q", "numerical_value": n}
                    )
                    if len(answers) == 6:
                        proxy.replicas[1].process.send_signal(signal.SIGTERM)
                        stopped.set()

        with anyio.fail_after(120):
            async with anyio.create_task_group() as group:
                group.start_soon(stream, 0)
                group.start_soon(stream, 1)
        assert stopped.is_set()
        assert proxy.replicas[1].process.wait(timeout=30) == 0
        assert "Traceback" not in proxy.replicas[1].stderr()

    assert sorted(answers) == list(range(count))
    failed = {n: a for n, a in answers.items() if a.is_error}  # type: ignore[attr-defined]
    assert not failed, failed
    stored = sorted((s["log_id"], s["numerical_value"]) for s in fake.scores.values())
    assert stored == sorted((f"log-{n}", n) for n in range(count))  # each exactly once
    assert {r.headers["authorization"] for r in fake.requests} == {f"Bearer {API_KEY}"}
    assert tool_calls(proxy.replicas[1])  # the stopped replica had served part of the stream


async def test_signed_in_replicas_share_nothing_and_both_accept_one_token(
    tmp_path: Path, api: RunningFakeRespan, fake: FakeRespan, oidc: OpenIdProvider
) -> None:
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"  # what callers reach: the proxy, whose URL tokens are issued for
    flags = ("--oauth-issuer", oidc.issuer, "--public-url", public_url)
    with behind_nginx(tmp_path, api.url, *flags, port=port) as proxy:
        for server in proxy.replicas:  # each replica loads the issuer's keys on its own
            deadline = time.monotonic() + 60  # a failure bound only
            while httpx2.get(f"{server.url}/readyz", timeout=10).status_code != 200:
                assert time.monotonic() < deadline, server.stderr()
                time.sleep(0.1)
        token = oidc.token(resource=f"{public_url}/mcp")
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            async with Client(streamable_http_client(f"{proxy.url}/mcp", http_client=http)) as client:
                for n in range(4):
                    written = await client.call_tool(
                        "upsert_log_score", {"log_id": f"log-{n}", "evaluator_slug": "helpfulness", "numerical_value": n}
                    )
                    assert not written.is_error, written.content
        async with httpx2.AsyncClient(base_url=proxy.url, timeout=30) as http:
            anonymous = await http.post(
                "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                headers={"Accept": "application/json, text/event-stream", "Content-Type": "application/json"},
            )
            metadata = (await http.get("/.well-known/oauth-protected-resource/mcp")).json()
        per_replica = [tool_calls(server) for server in proxy.replicas]

    assert all(len(calls) >= 1 for calls in per_replica), per_replica  # each replica served a call of the one token
    assert sum(map(len, per_replica)) == 4
    for line in (json.loads(line) for calls in per_replica for line in calls):
        assert line["outcome"] == "ok" and line["caller"]["client_id"] == CLIENT.client_id, line
    assert anonymous.status_code == 401
    assert f'resource_metadata="{public_url}/.well-known/oauth-protected-resource/mcp"' in anonymous.headers["www-authenticate"]
    assert metadata["resource"] == f"{public_url}/mcp"
    # Signed in, the callers write with the replicas' own key, even though the proxy's forwarding
    # headers would withdraw it from an anonymous caller; the token itself never reaches Respan.
    assert [w.headers["authorization"] for w in fake.writes()] == [f"Bearer {API_KEY}"] * 4
    assert not any(token in value for r in fake.requests for value in r.headers.values())
