"""Serving over stdio, with a graceful end: every request read is answered before the process exits.

The end comes when the host closes stdin, or with SIGTERM or SIGINT. Either way reading
stops, the requests already read are answered (for at most `SHUTDOWN_GRACE` seconds), and
only then does the SDK see the end of its input and shut down in its own order, writing
every answer out. Requests are counted rather than tool calls, so a request read but not
yet started, and a call that has returned but whose answer is not yet written, are both
waited for. A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from io import TextIOWrapper
from types import TracebackType
from typing import Any

import anyio
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from respan_mcp import calllog
from respan_mcp.config import Config
from respan_mcp.server import ServerState, build_server

SHUTDOWN_GRACE = 20.0  # seconds; in-flight calls are bounded by RESPAN_TIMEOUT anyway


def run(config: Config) -> None:
    """Serve one host over stdin and stdout until it closes stdin or a signal stops us."""
    state = ServerState(config)
    server = build_server(config, state=state)
    calllog.configure(config.log_format, config.log_level)
    anyio.run(serve_stdio, server)


async def serve_stdio(server: Server[Any]) -> None:
    lowlevel = server
    stdio = _Stdio()
    async with anyio.create_task_group() as group:
        group.start_soon(_stop_on_signal, stdio, group.cancel_scope)
        async with stdio_server(stdin=stdio.lines()) as (read_stream, write_stream):  # type: ignore[arg-type]
            stdio.write_stream = write_stream
            await lowlevel.run(read_stream, stdio, lowlevel.create_initialization_options())
        group.cancel_scope.cancel()


class _Stdio:
    """stdin's lines in (noting each request's id); the SDK's answers out (crossing it off).

    It is the write stream the SDK's server loop is given, so it sees every answer.
    """

    def __init__(self) -> None:
        self.write_stream: Any = None
        self._unanswered: set[str | int] = set()
        self._answered = anyio.Event()
        self._reader: asyncio.StreamReader | None = None

    def stop_reading(self) -> None:
        """As if stdin had ended: answer what was read, then shut down."""
        if self._reader is not None:
            self._reader.feed_eof()

    async def lines(self) -> AsyncIterator[str]:
        async for line in self._stdin_lines():
            self._note(line)
            yield line
        with anyio.move_on_after(SHUTDOWN_GRACE):
            while self._unanswered:
                self._answered = anyio.Event()
                await self._answered.wait()

    def _note(self, line: str) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            return  # the SDK answers it (parse error) without an id to wait for
        if not isinstance(message, dict) or not isinstance(message.get("method"), str):
            return
        request_id = message.get("id")
        if isinstance(request_id, str | int) and not isinstance(request_id, bool):
            self._unanswered.add(request_id)
        elif message["method"] == "notifications/cancelled" and isinstance(message.get("params"), dict):
            self._cross_off(message["params"].get("requestId"))  # a cancelled request gets no answer

    def _cross_off(self, request_id: Any) -> None:
        if isinstance(request_id, str | int):
            self._unanswered.discard(request_id)
        self._answered.set()

    async def _stdin_lines(self) -> AsyncIterator[str]:
        """Read stdin without a blocked thread, so a signal can end the reading."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=2**24)
        try:
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
        except (ValueError, OSError):  # a regular file, or a platform without pipe support
            async for line in anyio.wrap_file(TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")):
                yield line
            return
        self._reader = reader
        while line := await reader.readline():
            yield line.decode("utf-8", errors="replace")

    # The SDK's WriteStream protocol.
    async def send(self, item: Any, /) -> None:
        await self.write_stream.send(item)
        message = item.message
        if not hasattr(message, "method") and getattr(message, "id", None) is not None:
            self._cross_off(message.id)

    async def aclose(self) -> None:
        await self.write_stream.aclose()

    async def __aenter__(self) -> _Stdio:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


async def _stop_on_signal(stdio: _Stdio, scope: anyio.CancelScope) -> None:
    try:
        receiver = anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT)
    except NotImplementedError:  # Windows: the host closes stdin instead
        return
    with receiver as signals:
        async for _ in signals:
            stdio.stop_reading()
            break
        with anyio.move_on_after(SHUTDOWN_GRACE + 5):  # the graceful end normally cancels this wait
            async for _ in signals:
                break  # a second signal: stop now
        scope.cancel()
