"""An HTTP replica under abuse: a stalled request body, or a call that outlasts the grace, cannot
keep the process alive much past SHUTDOWN_GRACE after SIGTERM; a thousand clients that connect and
send no request (or half a head) neither use up its descriptors nor keep legitimate calls waiting.

Each test starts the console script on loopback. The waits on the process are failure bounds;
before these limits a stalled body held the exit for the drain grace and then uvicorn's own, and
1,100 silent connections left a replica with the usual 1,024 descriptors accepting no one.
"""

from __future__ import annotations

import resource
import select
import signal
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, suppress
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client

from respan_mcp.config import SHUTDOWN_GRACE
from respan_mcp.http_connections import connection_bound
from respan_mcp.http_drain import BODY_DEADLINE, CLOSE_GRACE
from respan_mcp.settings import default
from tests.conftest import server_env
from tests.e2e.test_http import WRITE, Replica, mcp_client, replica
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


def read_to_the_end(sock: socket.socket) -> bytes:
    """What the server sends until it closes the connection."""
    answer = b""
    while piece := sock.recv(4096):
        answer += piece
    return answer


def test_a_stalled_body_is_answered_408_within_the_body_deadline(tmp_path: Path, api: RunningFakeRespan) -> None:
    with replica(tmp_path, "--transport", "streamable-http", env=server_env(api.url)) as server:
        with stalled_post(server.port) as sock:
            sock.settimeout(BODY_DEADLINE + MARGIN)  # a failure bound
            answer = read_to_the_end(sock)  # the head and the body may come in two pieces
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


SLOW = 1_100  # silent connections: more than the usual default of 1,024 descriptors
SERVER_FDS = 1_024  # the descriptor limit, soft and hard, of the replica these tests start
LONG_WAIT = "300"  # RESPAN_HEADER_TIMEOUT where only the connection bound may drop a slow client
# The replica's launcher: lower the descriptor limits, then become the console script.
_LIMITED = "import os, resource, sys; n = int(sys.argv[1]); resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); os.execv(sys.argv[2], sys.argv[2:])"


@pytest.fixture
def many_fds() -> Iterator[None]:
    """This test process holds SLOW sockets at once: its own soft limit is raised for the test."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = SLOW + 256
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"the hard descriptor limit ({hard}) is below the {needed} this test holds")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def limited_replica(tmp_path: Path, env: dict[str, str], fds: int = SERVER_FDS) -> AbstractContextManager[Replica]:
    """A streamable HTTP replica on 127.0.0.1 that may hold at most `fds` descriptors."""
    launcher = (sys.executable, "-c", _LIMITED, str(fds))
    return replica(tmp_path, "--transport", "streamable-http", env=env, launcher=launcher)


def open_slow(port: int, stack: ExitStack) -> list[socket.socket]:
    """SLOW connections: half send nothing, half the start of a request head and no more."""
    socks = []
    for index in range(SLOW):
        sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))
        if index % 2:
            sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl")
        sock.setblocking(False)  # for closed_by_server's look
        socks.append(sock)
    return socks


def closed_by_server(sock: socket.socket) -> bool:
    """The server closed this connection (or reset it); it never sent anything before."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


async def wait_closed(socks: list[socket.socket], at_least: int, bound: float) -> int:
    """Wait (for at most `bound` seconds) until the server has closed `at_least` of `socks`."""
    poller = select.poll()  # select.select cannot watch descriptors past 1,023
    for sock in socks:
        poller.register(sock, select.POLLIN | select.POLLHUP)
    closed = 0
    with anyio.fail_after(bound):
        while (closed := sum(map(closed_by_server, socks))) < at_least:
            await anyio.to_thread.run_sync(poller.poll, 1000)  # wakes when one of them is readable
    return closed


async def all_accepted(slow: list[socket.socket]) -> None:
    """Wait until a replica with SERVER_FDS descriptors has accepted every one of `slow`: it holds
    `bound` of them and has closed one, the longest waiting, for each accepted past it. (Connections
    the kernel has queued but the server not yet accepted would otherwise compete with the call.)"""
    bound = connection_bound(SERVER_FDS, default("max_concurrency"))
    await wait_closed(slow, SLOW - bound, 30)


@pytest.mark.anyio
async def test_slow_clients_past_the_descriptor_limit_leave_calls_answered(
    tmp_path: Path, api: RunningFakeRespan, fake: FakeRespan, many_fds: None
) -> None:
    """With a header timeout far away, only the connection bound can make room: the newest
    connections close the oldest slow ones, so a call is answered and no accept fails."""
    env = server_env(api.url, RESPAN_HEADER_TIMEOUT=LONG_WAIT)
    with limited_replica(tmp_path, env) as server, ExitStack() as stack:
        async with mcp_client(server.url) as client:  # a client's first call loads its schema checks (seconds)
            await client.call_tool("upsert_log_score", WRITE)
        await all_accepted(open_slow(server.port, stack))
        with anyio.fail_after(10):
            async with mcp_client(server.url) as client:
                result = await client.call_tool("upsert_log_score", WRITE)
        assert not result.is_error, result
        assert [w.path for w in fake.writes()] == [f"/api/logs/{WRITE['log_id']}/scores/"] * 2
        assert httpx2.get(f"{server.url}/healthz").status_code == 200
    assert "Too many open files" not in server.stderr()


@pytest.mark.anyio
async def test_slow_clients_are_closed_at_the_header_deadline(
    tmp_path: Path, api: RunningFakeRespan, many_fds: None
) -> None:
    """Within the descriptor limit (no connection need give way), each silent or half-sent head is
    closed once RESPAN_HEADER_TIMEOUT has passed."""
    env = server_env(api.url, RESPAN_HEADER_TIMEOUT="1")
    with limited_replica(tmp_path, env, fds=SLOW * 4) as server, ExitStack() as stack:
        slow = open_slow(server.port, stack)
        assert await wait_closed(slow, SLOW, 1 + MARGIN) == SLOW
        assert httpx2.get(f"{server.url}/healthz").status_code == 200


@pytest.mark.anyio
async def test_slow_clients_do_not_hold_shutdown(tmp_path: Path, api: RunningFakeRespan, many_fds: None) -> None:
    env = server_env(api.url, RESPAN_HEADER_TIMEOUT=LONG_WAIT)
    with limited_replica(tmp_path, env) as server, ExitStack() as stack:
        await all_accepted(open_slow(server.port, stack))
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=SHUTDOWN_GRACE) == 0
    assert "Traceback" not in server.stderr()
