"""An HTTP replica's end is bounded: a stalled request body, or a call that outlasts the grace,
cannot keep the process alive much past SHUTDOWN_GRACE after SIGTERM.

Each test starts the console script on loopback. The waits on the process are failure bounds;
before these limits a stalled body held the exit for the drain grace and then uvicorn's own.
"""

from __future__ import annotations

import signal
import socket
import time
from contextlib import suppress
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client

from respan_mcp.config import SHUTDOWN_GRACE
from respan_mcp.http_drain import BODY_DEADLINE, CLOSE_GRACE
from tests.conftest import server_env
from tests.e2e.test_http import WRITE, mcp_client, replica
from tests.fake_api import FakeRespan, RunningFakeRespan

pytestmark = pytest.mark.slow

MARGIN = 5.0  # seconds of start-up and scheduling slack on a shared machine


def stalled_post(port: int) -> socket.socket:
    """A POST /mcp whose headers promise 1,000 bytes of body, of which only a few are sent."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Accept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n{\"jsonrpc\":"
    )
    return sock


def test_a_stalled_body_is_answered_408_within_the_body_deadline(tmp_path: Path, api: RunningFakeRespan) -> None:
    with replica(tmp_path, "--transport", "streamable-http", env=server_env(api.url)) as server:
        with stalled_post(server.port) as sock:
            sock.settimeout(BODY_DEADLINE + MARGIN)  # a failure bound
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b"did not arrive" in answer
        assert httpx2.get(f"{server.url}/healthz").status_code == 200  # the replica goes on


def test_a_stalled_body_does_not_hold_shutdown_past_the_grace(tmp_path: Path, api: RunningFakeRespan) -> None:
    with replica(tmp_path, "--transport", "streamable-http", env=server_env(api.url)) as server:
        with stalled_post(server.port):
            assert httpx2.get(f"{server.url}/readyz").status_code == 200  # the stalled request has been read
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            assert server.process.wait(timeout=SHUTDOWN_GRACE + MARGIN) == 0
            took = time.monotonic() - started
    assert took < BODY_DEADLINE + CLOSE_GRACE + MARGIN, f"exited {took:.1f} s after SIGTERM"
    assert "Traceback" not in server.stderr()


async def call_quietly(client: Client) -> None:
    with suppress(Exception):  # the process ends under it
        await client.call_tool("upsert_log_score", WRITE)


@pytest.mark.anyio
async def test_a_call_that_outlasts_the_grace_does_not_hold_the_exit(
    tmp_path: Path, api: RunningFakeRespan, fake: FakeRespan
) -> None:
    with replica(tmp_path, "--transport", "streamable-http", env=server_env(api.url)) as server:
        async with mcp_client(server.url) as client:
            fake.latency = SHUTDOWN_GRACE * 3
            async with anyio.create_task_group() as group:
                group.start_soon(call_quietly, client)
                with anyio.fail_after(30):
                    while not fake.requests:  # the call reached Respan: it is in flight
                        await anyio.sleep(0.02)
                started = time.monotonic()
                server.process.send_signal(signal.SIGTERM)
                with anyio.fail_after(SHUTDOWN_GRACE + CLOSE_GRACE + MARGIN):
                    while server.process.poll() is None:
                        await anyio.sleep(0.1)
                took = time.monotonic() - started
                group.cancel_scope.cancel()
    assert server.process.returncode == 0
    assert SHUTDOWN_GRACE <= took < SHUTDOWN_GRACE + CLOSE_GRACE + MARGIN, f"exited {took:.1f} s after SIGTERM"
