"""The connection bound and the header deadline, on uvicorn's h11 protocol with in-memory connections.

`Wire` stands for a connection's server end (what the server wrote, whether it closed it), so the
order of arrivals and what each sent are exact; tests/e2e/test_http_limits.py runs the same against the
real console script with 1,100 sockets.
"""

from __future__ import annotations

import asyncio
import resource
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from respan_mcp.http_connections import MOST_FDS, bounded_protocol, connection_bound, raise_fd_limit

pytestmark = pytest.mark.anyio

HELD = b"GET /held HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"  # a request the app answers only when released
QUICK = b"GET /quick HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
HALF_A_HEAD = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty"
LONG = 300.0  # a header timeout no test waits for


class Wire(asyncio.Transport):
    """A connection's server end, in memory."""

    def __init__(self, protocol: H11Protocol) -> None:
        super().__init__()
        self.protocol, self.sent, self.closed = protocol, bytearray(), anyio.Event()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.sent += data

    def is_closing(self) -> bool:
        return self.closed.is_set()

    def close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


Connect = Callable[..., Wire]


@pytest.fixture
async def server() -> AsyncIterator[Callable[[int, float], Connect]]:
    """`server(limit, header_timeout)` gives `connect(sent=b"")`, which opens a connection and sends `sent`."""
    release = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/held":
            await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    config = uvicorn.Config(app, log_config=None, timeout_keep_alive=int(LONG))  # only our deadline closes
    state = ServerState()
    wires: list[Wire] = []

    def start(limit: int, header_timeout: float) -> Connect:
        protocol_class = bounded_protocol(limit, header_timeout)

        def connect(sent: bytes = b"") -> Wire:
            protocol = protocol_class(config=config, server_state=state, app_state={})
            wire = Wire(protocol)
            wires.append(wire)
            protocol.connection_made(wire)
            if sent and not wire.is_closing():
                protocol.data_received(sent)
            return wire

        return connect

    yield start
    release.set()
    for wire in wires:
        wire.close()
    await asyncio.sleep(0)  # connection_lost runs
    assert not state.connections


async def test_at_the_bound_the_connection_waiting_longest_for_its_head_gives_way(
    server: Callable[[int, float], Connect],
) -> None:
    connect = server(3, LONG)
    busy = connect(HELD)
    silent = connect()
    half = connect(HALF_A_HEAD)
    newest = connect()  # the fourth: the oldest still waiting for a head is closed, not the busy one
    assert silent.is_closing() and not (busy.is_closing() or half.is_closing() or newest.is_closing())
    last = connect(QUICK)
    assert half.is_closing() and not (busy.is_closing() or newest.is_closing() or last.is_closing())
    await wait_for(lambda: last.sent.endswith(b"ok"))
    assert last.sent.startswith(b"HTTP/1.1 200")
    assert not silent.sent and not half.sent  # closed without a word: they never asked anything


async def test_when_every_connection_is_busy_a_new_one_is_refused_with_503(
    server: Callable[[int, float], Connect], caplog: pytest.LogCaptureFixture
) -> None:
    connect = server(2, LONG)
    first, second = connect(HELD), connect(HELD)
    refused, again = connect(QUICK), connect()
    assert refused.is_closing() and again.is_closing() and not (first.is_closing() or second.is_closing())
    assert refused.sent.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"connection: close" in refused.sent and b"send the request again soon" in refused.sent
    said = [r.getMessage() for r in caplog.records if r.name == "respan_mcp.http_connections"]
    assert said == ["2 connections open, all busy with requests: new ones are refused"]  # once, not per connection


async def test_a_head_that_does_not_arrive_in_time_closes_the_connection(
    server: Callable[[int, float], Connect],
) -> None:
    connect = server(100, 0.05)
    answered = connect(HELD)  # its head arrived: the deadline passes it by
    silent, half = connect(), connect(HALF_A_HEAD)
    with anyio.fail_after(5):  # a failure bound
        await silent.closed.wait()
        await half.closed.wait()
    assert not answered.is_closing()


async def test_a_kept_alive_connection_has_the_deadline_again_for_its_next_head(
    server: Callable[[int, float], Connect],
) -> None:
    connect = server(100, 0.05)
    wire = connect(QUICK)
    await wait_for(lambda: wire.sent.endswith(b"ok"))
    assert not wire.is_closing()
    wire.protocol.data_received(HALF_A_HEAD)
    with anyio.fail_after(5):
        await wire.closed.wait()
    assert wire.sent.count(b"HTTP/1.1") == 1


def test_the_bound_leaves_room_below_the_descriptor_limit() -> None:
    assert connection_bound(1024, 16) < 1024 - 16
    assert connection_bound(65_536, 16) > 60_000
    assert connection_bound(64, 100) > 0  # a tiny limit still serves


def test_the_soft_descriptor_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MOST_FDS if hard == resource.RLIM_INFINITY else min(hard, MOST_FDS)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, wanted // 2), hard))
        assert raise_fd_limit() == wanted == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def wait_for(condition: Callable[[], bool]) -> None:
    """Let the app's tasks run until `condition` holds (a failure bound, no fixed interval)."""
    with anyio.fail_after(5):
        while not condition():
            await asyncio.sleep(0)
