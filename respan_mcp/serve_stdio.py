"""Serving over stdio: every line read gets an answer, and the end is graceful.

Lines are read here and checked (`stdio_lines`) before the SDK's reader sees them: a line the
SDK would drop, or could not read at all, gets its own error answer instead of ending the
process or going unanswered. stdin may be a pipe, a terminal, a regular file or /dev/null (a
recorded session replayed); it is read to its end either way.

The end comes when stdin ends, or with SIGTERM or SIGINT. Either way reading stops, `on_stop`
is called, the requests already read are answered (for at most `SHUTDOWN_GRACE` seconds), and
only then does the SDK see the end of its input and shut down in its own order, writing every
answer out. Requests are counted rather than tool calls, so a request read but not yet
started, and a call that has returned but whose answer is not yet written, are both waited
for. A second signal stops at once.

While serving, fd 0 points at the null device and fd 1 at stderr, as the SDK's own stdio does,
so a child process cannot read the host's lines and a stray print never lands on the wire; the
wire is read and written through private copies, and fd 0 and 1 are handed back as they were.
Answers to a pipe or socket are written in the event loop (`stdio_fds.PipeWriter`).
"""

from __future__ import annotations

import logging
import os
import signal
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from types import TracebackType
from typing import Any, Protocol, cast

import anyio
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp.types import (
    ErrorData,
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    RequestId,
)

from respan_mcp import calllog
from respan_mcp.config import SHUTDOWN_GRACE, Config
from respan_mcp.server import ServerState, build_server
from respan_mcp.stdio_fds import claimed, open_null, stdout_writer
from respan_mcp.stdio_lines import Lines, Rejected, TooLarge, check

logger = logging.getLogger(__name__)

def run(config: Config) -> None:
    """Serve one host over stdin and stdout until it closes stdin or a signal stops us."""
    state = ServerState(config)
    server = build_server(config, state=state)
    calllog.configure(config.log_format, config.log_level)
    anyio.run(_serve, server, state)


async def _serve(server: Server[ServerState], state: ServerState) -> None:
    # Set when reading stops: a batch running then shrinks its deadline to fit the grace period,
    # so the agent still gets its report (the rest deferred) before the process exits.
    state.shutting_down = anyio.Event()
    await serve_stdio(server, on_stop=state.shutting_down.set)


_CHUNK = 2**16


async def serve_stdio(server: Server[Any], *, on_stop: Callable[[], None] | None = None) -> None:
    """Serve one host over stdin and stdout until stdin ends or a signal stops the process.

    `on_stop` is called once, when reading stops and before the answers still owed are waited for.
    """
    with claimed(0, open_null) as stdin, stdout_writer() as stdout:
        stdio = _Stdio(on_stop, stdin)
        async with anyio.create_task_group() as group:
            group.start_soon(_stop_on_signal, stdio, group.cancel_scope)
            # The SDK only iterates `stdin` for lines and calls `write` and `flush` on `stdout`; when
            # `stdout` is None it claims fd 1 itself and writes through a worker thread.
            async with stdio_server(
                stdin=cast("anyio.AsyncFile[str]", stdio.lines()), stdout=cast("anyio.AsyncFile[str] | None", stdout)
            ) as (read_stream, write_stream):
                stdio.connect(write_stream)
                await server.run(read_stream, stdio, server.create_initialization_options())
            group.cancel_scope.cancel()


class _Sink(Protocol):
    """The SDK's stdio write stream, as far as it is used here."""

    async def send(self, item: SessionMessage, /) -> None: ...

    async def aclose(self) -> None: ...


class _Stdio:
    """stdin's checked lines in (noting each request's id); the SDK's answers out (crossing it off).

    It is the write stream the SDK's server loop is given, so it sees every answer.
    """

    def __init__(self, on_stop: Callable[[], None] | None, stdin: int | None) -> None:
        self._on_stop = on_stop
        self._stdin_fd = stdin
        self._out: _Sink | None = None
        self._connected = anyio.Event()
        self._unanswered: set[RequestId] = set()
        self._answered = anyio.Event()
        self._stopped = False
        self._read_scope: anyio.CancelScope | None = None

    def connect(self, out: _Sink) -> None:
        self._out = out
        self._connected.set()

    def stop_reading(self) -> None:
        """As if stdin had ended: answer what was read, then shut down."""
        self._stopped = True
        if self._read_scope is not None:
            self._read_scope.cancel()

    async def lines(self) -> AsyncIterator[str]:
        lines = Lines()
        async for chunk in self._stdin():
            for line in lines.feed(chunk):
                if (text := await self._admit(line)) is not None:
                    yield text
        if not self._stopped:  # a line cut short by a signal was never read to its end
            for line in lines.rest():
                if (text := await self._admit(line)) is not None:
                    yield text
        if self._on_stop is not None:
            try:
                self._on_stop()
            except Exception:  # the answers owed matter more than the hook
                logger.exception("on_stop failed")
        with anyio.move_on_after(SHUTDOWN_GRACE):
            while self._unanswered:
                self._answered = anyio.Event()
                await self._answered.wait()

    async def _admit(self, line: bytes | TooLarge) -> str | None:
        """The line's text for the SDK, or None once it has been answered here (or needs no answer)."""
        checked = check(line)
        if isinstance(checked, Rejected):
            logger.info("answered a line from stdin with error %d: %s", checked.code, checked.message)
            error = JSONRPCError(jsonrpc="2.0", id=checked.id, error=ErrorData(code=checked.code, message=checked.message))
            await self._connected.wait()
            assert self._out is not None
            try:
                await self._out.send(SessionMessage(error))
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass  # the server has stopped writing: nobody is there to read the answer
            return None
        if checked is None:
            return None
        text, message = checked
        self._note(message)
        return text

    def _note(self, message: JSONRPCMessage) -> None:
        if isinstance(message, JSONRPCRequest):
            self._unanswered.add(message.id)
        elif isinstance(message, JSONRPCNotification) and message.method == "notifications/cancelled":
            cancelled = str((message.params or {}).get("requestId"))  # the SDK matches "7" to 7 too
            self._cross_off(*(known for known in self._unanswered if str(known) == cancelled))

    def _cross_off(self, *request_ids: RequestId) -> None:
        self._unanswered.difference_update(request_ids)
        self._answered.set()

    async def _stdin(self) -> AsyncIterator[bytes]:
        """stdin's bytes until it ends or `stop_reading` is called.

        A pipe, socket or terminal is awaited in the event loop, with no thread blocked in a
        read, so a signal can end the reading. A regular file or /dev/null cannot be watched by
        the event loop (epoll refuses them) but never blocks, so a worker thread reads it.
        """
        fd = self._stdin_fd
        if fd is None:
            return  # no stdin at all: nothing to read
        mode = os.fstat(fd).st_mode
        pollable = os.name == "posix" and (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd))
        read: Callable[[], Awaitable[bytes]] = (
            partial(_read_when_ready, fd) if pollable else partial(anyio.to_thread.run_sync, os.read, fd, _CHUNK)
        )
        if pollable:
            os.set_blocking(fd, False)  # `claimed` restores it
        while not self._stopped:
            with anyio.CancelScope() as self._read_scope:
                try:
                    chunk = await read()
                except (OSError, anyio.ClosedResourceError):
                    logger.info("stdin could not be read; ending as at its end", exc_info=True)
                    chunk = b""
            if self._read_scope.cancel_called or not chunk:
                return
            yield chunk

    # The SDK's WriteStream protocol.
    async def send(self, item: SessionMessage, /) -> None:
        assert self._out is not None
        await self._out.send(item)
        message = item.message
        if isinstance(message, JSONRPCResponse | JSONRPCError) and message.id is not None:
            self._cross_off(message.id)

    async def aclose(self) -> None:
        if self._out is not None:
            await self._out.aclose()

    async def __aenter__(self) -> _Stdio:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


async def _read_when_ready(fd: int) -> bytes:
    while True:
        try:
            return os.read(fd, _CHUNK)
        except BlockingIOError:
            await anyio.wait_readable(fd)


async def _stop_on_signal(stdio: _Stdio, scope: anyio.CancelScope) -> None:
    try:
        receiver = anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT)
    except NotImplementedError:  # Windows: the host closes stdin instead
        return
    with receiver as signals:
        async for _ in signals:
            logger.info(
                "stopping: answering the requests already read (for at most %g s); a second signal stops at once",
                SHUTDOWN_GRACE,
            )
            stdio.stop_reading()
            break
        with anyio.move_on_after(SHUTDOWN_GRACE + 5):  # the graceful end normally cancels this wait
            async for _ in signals:
                break  # a second signal: stop now
        scope.cancel()
