"""Serving over stdio, the transport owned outright: every line read gets an answer, and the end is graceful.

Not the SDK's `mcp.server.stdio.stdio_server`, because what the README promises about stdio lives
at the level of bytes, which it hides: it reads each line whole in a worker thread (no bound on a
line's size, and a read no signal can end), drops a line it cannot parse without an answer, and
writes every answer through two worker-thread hops. So fd 0 and 1 are read and written here, and
the SDK's `Server.run` gets two plain anyio memory streams.

Each line is checked (`stdio_lines`): a bad one gets its own error answer, a good one goes to the
server. stdin may be a pipe, a terminal, a regular file or /dev/null; it is read to its end.
The end comes when stdin ends, or with SIGTERM or SIGINT. Either way reading stops, `on_stop` is
called, the requests already read are answered (for at most `SHUTDOWN_GRACE` seconds), and only
then does the server see the end of its input and shut down, every answer written out. Requests
are counted, not tool calls, so a request read but not started, and a call returned but not yet
written, are both waited for. A second signal stops at once. A host that closes stdout first loses
the answers, and the server ends quietly (exit 0) when stdin does.

The file-descriptor rules are the SDK's, copied on purpose (`_claim_fd` in mcp/server/stdio.py):
the wire is served from a private duplicate above the standard range, closed on exec; while
serving, fd 0 points at the null device and fd 1 at stderr, so a child reads an empty stdin and a
stray print lands on stderr; on the way out both point at the wire again, and a second claim in
this process is refused (by our own registry: the SDK's is private, so it does not see a concurrent
SDK `stdio_server`). Beyond the SDK: the blocking mode the event loop changes is handed back as it
was. On Windows fd 0 and 1 are served in place.
"""

from __future__ import annotations

import logging
import os
import signal
import stat
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from mcp.server.lowlevel import Server
from mcp.shared.message import SessionMessage
from mcp.types import ErrorData, JSONRPCError, JSONRPCNotification, JSONRPCRequest, JSONRPCResponse, RequestId

from respan_mcp import calllog
from respan_mcp.config import SHUTDOWN_GRACE, Config
from respan_mcp.server import ServerState, build_server
from respan_mcp.stdio_lines import Lines, Rejected, TooLarge, check

if sys.platform != "win32":
    import fcntl

logger = logging.getLogger(__name__)

_CHUNK = 2**16
_claims: set[int] = set()  # the standard fds being served; a second claim is refused
_claims_lock = threading.Lock()


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


async def serve_stdio(server: Server[Any], *, on_stop: Callable[[], None] | None = None) -> None:
    """Serve one host over stdin and stdout until stdin ends or a signal stops the process.

    `on_stop` is called once, when reading stops and before the answers still owed are waited for.
    """
    with _claimed(0, _open_null) as stdin, _claimed(1, _open_stderr) as stdout:
        wire = _Wire(stdin, stdout, on_stop)
        async with anyio.create_task_group() as group:
            group.start_soon(_stop_on_signal, wire, group.cancel_scope)
            async with anyio.create_task_group() as session:
                session.start_soon(wire.read)
                session.start_soon(wire.write)
                await server.run(wire.from_host, wire.to_host, server.create_initialization_options())
            group.cancel_scope.cancel()


class _Wire:
    """stdin's checked lines in (noting each request's id); answers out to stdout (crossing it off)."""

    def __init__(self, stdin: int | None, stdout: int | None, on_stop: Callable[[], None] | None) -> None:
        self._stdin, self._stdout, self._on_stop = stdin, stdout, on_stop
        self._to_server, self.from_host = anyio.create_memory_object_stream[SessionMessage](0)
        self.to_host, self._from_server = anyio.create_memory_object_stream[SessionMessage](0)
        self._unanswered: set[RequestId] = set()
        self._answered = anyio.Event()
        self._stopped = False
        self._read_scope: anyio.CancelScope | None = None

    def stop_reading(self) -> None:
        """As if stdin had ended: answer what was read, then shut down."""
        self._stopped = True
        if self._read_scope is not None:
            self._read_scope.cancel()

    async def read(self) -> None:
        """Lines to the server (or answered here) until stdin ends; then the answers owed, then the end."""
        answers = self.to_host.clone()  # for the lines answered here; the writer ends once both are closed
        async with self._to_server, answers:
            lines = Lines()
            async for chunk in self._chunks():
                for line in lines.feed(chunk):
                    await self._admit(line, answers)
            if not self._stopped:  # a line cut short by a signal was never read to its end
                for line in lines.rest():
                    await self._admit(line, answers)
            if self._on_stop is not None:
                try:
                    self._on_stop()
                except Exception:  # the answers owed matter more than the hook
                    logger.exception("on_stop failed")
            with anyio.move_on_after(SHUTDOWN_GRACE):
                while self._unanswered:
                    self._answered = anyio.Event()
                    await self._answered.wait()

    async def _admit(self, line: bytes | TooLarge, answers: MemoryObjectSendStream[SessionMessage]) -> None:
        checked = check(line)
        if checked is None:
            return
        try:
            if isinstance(checked, Rejected):
                logger.info("answered a line from stdin with error %d: %s", checked.code, checked.message)
                error = ErrorData(code=checked.code, message=checked.message)
                await answers.send(SessionMessage(JSONRPCError(jsonrpc="2.0", id=checked.id, error=error)))
                return
            if isinstance(checked, JSONRPCRequest):
                self._unanswered.add(checked.id)
            elif isinstance(checked, JSONRPCNotification) and checked.method == "notifications/cancelled":
                cancelled = str((checked.params or {}).get("requestId"))  # the SDK matches "7" to 7 too
                self._cross_off(*(known for known in self._unanswered if str(known) == cancelled))
            await self._to_server.send(SessionMessage(checked))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.stop_reading()  # the server has stopped: nobody is there to serve the line

    def _cross_off(self, *request_ids: RequestId) -> None:
        self._unanswered.difference_update(request_ids)
        self._answered.set()

    async def _chunks(self) -> AsyncIterator[bytes]:
        """stdin's bytes until it ends or `stop_reading` is called.

        A pipe, socket or terminal is awaited in the event loop, with no thread blocked in a
        read, so a signal can end the reading. A regular file or /dev/null cannot be watched by
        the event loop (epoll refuses them) but never blocks, so a worker thread reads it.
        """
        fd = self._stdin
        if fd is None:
            return  # no stdin at all: nothing to read
        mode = os.fstat(fd).st_mode
        pollable = os.name == "posix" and (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd))
        if pollable:
            os.set_blocking(fd, False)  # `_claimed` restores it
        while not self._stopped:
            with anyio.CancelScope() as self._read_scope:
                try:
                    chunk = await (_read_when_ready(fd) if pollable else anyio.to_thread.run_sync(os.read, fd, _CHUNK))
                except OSError:
                    logger.info("stdin could not be read; ending as at its end", exc_info=True)
                    chunk = b""
            if self._read_scope.cancel_called or not chunk:
                return
            yield chunk

    async def write(self) -> None:
        """Each answer to stdout, whole, in order; then the request it answers is crossed off.

        A pipe or socket of our own is written in the event loop: a thread hop costs about 60 µs
        of CPU, more than respan-mcp's own work on a call. Nothing is buffered here, so a host that
        reads slowly holds the server back. A regular file, a terminal, or a pipe shared with stderr
        (`2>&1`, whose other writers must not see it non-blocking) is written by a worker thread.
        """
        fd = self._stdout
        pollable = fd is not None and _own_pipe(fd)
        if fd is not None and pollable:
            os.set_blocking(fd, False)  # `_claimed` restores it
        async with self._from_server:
            async for item in self._from_server:
                if fd is not None:
                    data = (item.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n").encode()
                    try:
                        await (write_when_ready(fd, data) if pollable else anyio.to_thread.run_sync(_write_all, fd, data))
                    except OSError as exc:  # EPIPE: no one reads the answers any more
                        logger.info("stdout cannot be written (%s); answers are dropped until stdin ends", exc)
                        fd = None
                message = item.message
                if isinstance(message, JSONRPCResponse | JSONRPCError) and message.id is not None:
                    self._cross_off(message.id)


async def _read_when_ready(fd: int) -> bytes:
    while True:
        try:
            return os.read(fd, _CHUNK)
        except BlockingIOError:
            await anyio.wait_readable(fd)


async def write_when_ready(fd: int, data: bytes) -> None:
    """All of `data` to non-blocking `fd`, waiting in the event loop while the reader catches up."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            await anyio.wait_writable(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _own_pipe(fd: int) -> bool:
    """Whether `fd` is a pipe or socket that stderr does not share (so it may be made non-blocking)."""
    mode = os.fstat(fd)
    if os.name != "posix" or not (stat.S_ISFIFO(mode.st_mode) or stat.S_ISSOCK(mode.st_mode)):
        return False
    try:
        return not os.path.samestat(mode, os.fstat(2))
    except OSError:
        return True  # no stderr


async def _stop_on_signal(wire: _Wire, scope: anyio.CancelScope) -> None:
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
            wire.stop_reading()
            break
        with anyio.move_on_after(SHUTDOWN_GRACE + 5):  # the graceful end normally cancels this wait
            async for _ in signals:
                break  # a second signal: stop now
        scope.cancel()


@contextmanager
def _claimed(fd: int, divert: Callable[[], int]) -> Iterator[int | None]:
    """A private copy of standard `fd` for the wire while `fd` points at what `divert` opens; then as it was.

    None: `fd` is not open. Raises RuntimeError when `fd` is already claimed in this process.
    A failed restore keeps the claim, so a later claim is refused rather than handed the diversion.
    """
    if sys.platform == "win32":
        yield fd
        return
    with _claims_lock:
        if fd in _claims:
            raise RuntimeError(f"fd {fd} is already served over stdio in this process; serve one host at a time")
        _claims.add(fd)
    try:
        private = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    except OSError:  # not open: nothing to serve
        try:
            yield None
        finally:
            _release(fd)
        return
    blocking = os.get_blocking(private)
    try:
        diversion = divert()
        try:
            os.dup2(diversion, fd)
        finally:
            os.close(diversion)
    except OSError:
        logger.warning("could not divert fd %d: a child process or a stray print may reach the wire", fd)
    try:
        yield private
    finally:
        os.set_blocking(private, blocking)
        os.dup2(private, fd)  # when this fails, the claim is kept
        os.close(private)
        _release(fd)


def _release(fd: int) -> None:
    with _claims_lock:
        _claims.discard(fd)


def _open_null() -> int:
    return os.open(os.devnull, os.O_RDONLY)


def _open_stderr() -> int:
    try:
        return os.dup(2)
    except OSError:
        return os.open(os.devnull, os.O_WRONLY)
