"""Draining an HTTP replica, and the limits that keep a slow or stalled client from holding it.

On SIGTERM or SIGINT the replica drains: /readyz says 503 and new MCP work is refused while the
listener stays open (a load balancer moves traffic elsewhere), the calls in flight finish (for
at most SHUTDOWN_GRACE seconds), and then uvicorn shuts down in its own order, waiting at most
CLOSE_GRACE more for responses still being written and idle SSE streams. A request body has
BODY_DEADLINE seconds to arrive, so a stalled one cannot hold the drain.
"""

from __future__ import annotations

import functools
import logging
import signal
from typing import Any

import anyio
import uvicorn
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive

from respan_mcp.config import SHUTDOWN_GRACE
from respan_mcp.server import ServerState

logger = logging.getLogger(__name__)

CLOSE_GRACE = 2  # seconds uvicorn waits, after the drain, for responses being written (and cuts SSE streams)


_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_DRAIN_POLL = 0.1  # seconds between looks at the counts of calls in flight (uvicorn's own loop looks as often)


async def drain_on_signal(server: uvicorn.Server, gate: DrainGate) -> None:
    """On SIGTERM or SIGINT: drain, then let uvicorn shut down in its own order; a second signal stops at once.

    Draining: /readyz says 503 and new MCP work is refused (see DrainGate) while the listener stays
    open, so a load balancer moves traffic elsewhere, and the calls in flight finish (for at most
    SHUTDOWN_GRACE seconds); then `should_exit`, uvicorn's public switch, closes the listener and
    lets open responses complete. uvicorn has no public hook for that first stage: `Server.serve`
    installs handlers that shut down at once and, afterwards, re-raise the signal (which would end
    the process by that signal instead of with exit code 0). Handlers installed later replace them,
    so ours are installed once the app's lifespan has started, which `serve` does after its own.
    """
    await gate.started.wait()
    with anyio.open_signal_receiver(*_SIGNALS) as signals:
        async with anyio.create_task_group() as group:
            async for _ in signals:
                if gate.state.draining:
                    logger.info("a second signal: stopping now")
                    server.should_exit = server.force_exit = True
                    continue
                logger.info("draining: /readyz says 503; the calls in flight finish (for at most %g s)", SHUTDOWN_GRACE)
                gate.state.draining = True
                assert gate.state.shutting_down is not None
                gate.state.shutting_down.set()
                group.start_soon(_exit_when_idle, server, gate)


async def _exit_when_idle(server: uvicorn.Server, gate: DrainGate) -> None:
    with anyio.move_on_after(SHUTDOWN_GRACE):
        while gate.state.in_flight or gate.in_flight:  # counts without an event to wait on
            await anyio.sleep(_DRAIN_POLL)
    server.should_exit = True


BODY_DEADLINE = 10.0  # seconds for a request's body to arrive; well inside SHUTDOWN_GRACE, so a stalled one cannot hold it


async def _body_in_time(receive: Receive) -> list[Message] | None:
    """A request's body messages, read within BODY_DEADLINE; None when it stalled.

    Reading stops early past the SDK's body limit (the app then refuses the request with 413),
    so no more than that is held here.
    """
    messages: list[Message] = []
    size = 0
    with anyio.move_on_after(BODY_DEADLINE):
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body") or size > DEFAULT_MAX_REQUEST_BODY_SIZE:
                return messages
    return None


async def _replay(messages: list[Message], receive: Receive) -> Message:
    """The body messages already read, then the client's own (a disconnect, or the rest past the limit)."""
    return messages.pop(0) if messages else await receive()


class DrainGate:
    """ASGI wrapper: while draining, new MCP work is answered 503, so a proxy retries it on another replica.

    Streamable HTTP requests are counted from arrival to last byte, so draining waits
    for a request even before its tool call has started. On SSE only new streams are
    refused: calls on an open stream belong to this replica and are counted as tool calls.
    Any request with a body is counted while it runs, and its body has BODY_DEADLINE to arrive.
    """

    def __init__(self, app: Any, state: ServerState, path: str, *, count: bool) -> None:
        self.app, self.state, self.path, self.count = app, state, path, count
        self.in_flight = 0
        self.started = anyio.Event()  # the app's lifespan has started

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, functools.partial(self._note_startup, send))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gated = scope["path"].rstrip("/") == self.path
        if gated and self.count and scope["method"] == "GET":
            # Stateless streamable HTTP has no server-initiated messages to stream; an idle GET stream
            # would only hold a descriptor and delay shutdown. The spec lets a server answer 405.
            await Response(status_code=405, headers={"Allow": "POST"})(scope, receive, send)
            return
        if gated and self.state.draining:
            busy = JSONResponse(
                {"detail": "This replica is shutting down; send the request again (another replica will answer)."},
                status_code=503,
                headers={"Retry-After": "1", "Connection": "close"},
            )
            await busy(scope, receive, send)
            return
        with_body = scope["method"] in ("POST", "PUT", "PATCH")
        counted = int((gated and self.count) or with_body)  # a body still arriving is waited for too
        self.in_flight += counted
        try:
            if with_body:
                body = await _body_in_time(receive)
                if body is None:
                    stalled = JSONResponse(
                        {"detail": f"The request body did not arrive within {BODY_DEADLINE:g} s; send it again."},
                        status_code=408,
                        headers={"Connection": "close"},
                    )
                    await stalled(scope, receive, send)
                    return
                receive = functools.partial(_replay, body, receive)
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= counted

    async def _note_startup(self, send: Any, message: Any) -> None:
        await send(message)
        if message["type"] == "lifespan.startup.complete":
            self.started.set()
