"""Serving the server: stdio for a host that starts it, SSE and streamable HTTP to serve many.

Shutdown is graceful on every transport: on SIGTERM or SIGINT, or when the host
closes stdin, calls already in flight finish (for at most `SHUTDOWN_GRACE`
seconds) and the HTTP client is closed before the process exits with 0.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from io import TextIOWrapper
from typing import Any

import anyio
from mcp.server.stdio import stdio_server

from respan_mcp.config import Config
from respan_mcp.server import ServerState, build_server

SHUTDOWN_GRACE = 20.0  # seconds; in-flight calls are bounded by RESPAN_TIMEOUT anyway


def serve(config: Config, *, transport: str = "stdio", host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run until the host closes stdin, or a signal stops the process."""
    server = build_server(config)
    if transport == "stdio":
        anyio.run(_serve_stdio, server)
        return

    import uvicorn

    if transport == "sse":
        app = server.sse_app(host=host)
    else:
        # Stateless: any replica behind a load balancer can answer any request.
        app = server.streamable_http_app(stateless_http=True, host=host)
    uvicorn_config = uvicorn.Config(
        app, host=host, port=port, log_level=config.log_level.lower(), timeout_graceful_shutdown=int(SHUTDOWN_GRACE)
    )
    anyio.run(uvicorn.Server(uvicorn_config).serve)


async def _serve_stdio(server: Any) -> None:
    state: ServerState = server.state
    lowlevel = server._lowlevel_server  # the SDK's own stdio runner takes no stdin of ours
    async with anyio.create_task_group() as group:
        group.start_soon(_stop_on_signal, state, group.cancel_scope)
        async with stdio_server(stdin=_stdin_until_drained(state)) as (read_stream, write_stream):  # type: ignore[arg-type]
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
        group.cancel_scope.cancel()


async def _stdin_until_drained(state: ServerState) -> AsyncIterator[str]:
    """stdin's lines; at EOF, the SDK hears of it only once the calls in flight have answered."""
    async for line in _stdin_lines():
        yield line
    await state.drained(SHUTDOWN_GRACE)


async def _stdin_lines() -> AsyncIterator[str]:
    """Read stdin without a blocked thread, so a signal can end the process mid-read."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**24)
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    except (ValueError, OSError):  # a regular file, or a platform without pipe support
        async for line in anyio.wrap_file(TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")):
            yield line
        return
    while line := await reader.readline():
        yield line.decode("utf-8", errors="replace")


async def _stop_on_signal(state: ServerState, scope: anyio.CancelScope) -> None:
    try:
        receiver = anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT)
    except NotImplementedError:  # Windows: the host closes stdin instead
        return
    with receiver as signals:
        async for _ in signals:
            await state.drained(SHUTDOWN_GRACE)
            scope.cancel()
            return
