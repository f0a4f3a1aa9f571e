"""stdio's wire: what runs for every line, in and out.

stdin's bytes are split into lines (`Lines`, never holding more than MAX_LINE_BYTES of one),
each line is checked (`check`): a bad one gets its own error answer here, a good one goes to the
server. Each answer is written to stdout whole, in order, and the request it answers crossed off,
so the session knows which answers it still owes. What only a bad line needs (its diagnosis, its
id) lives in `stdio_lines.py`, and the session around the wire (start, signals, the end) in
`serve_stdio.py`, so a warm call crosses this one transport module.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import AsyncIterator, Callable

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from mcp.shared.message import SessionMessage
from mcp.types import (
    INVALID_REQUEST,
    PARSE_ERROR,
    ErrorData,
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    RequestId,
    jsonrpc_message_adapter,
)
from pydantic import ValidationError

from respan_mcp.config import SHUTDOWN_GRACE
from respan_mcp.stdio_lines import (
    ID_RULE,
    ID_WINDOW,
    MAX_DEPTH,
    MAX_LINE_BYTES,
    Rejected,
    TooLarge,
    as_object,
    diagnose,
    find_id,
    nests_deeper,
    too_deep,
)

logger = logging.getLogger(__name__)

_CHUNK = 2**16


class Lines:
    """Splits stdin's bytes into lines, never holding more than MAX_LINE_BYTES of one."""

    def __init__(self) -> None:
        self._line = bytearray()
        self._over: TooLarge | None = None

    def feed(self, chunk: bytes) -> list[bytes | TooLarge]:
        """The lines `chunk` completes."""
        lines: list[bytes | TooLarge] = []
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            self._add(chunk[start:end])
            lines.append(self._take())
            start = end + 1
        self._add(chunk[start:])
        return lines

    def rest(self) -> list[bytes | TooLarge]:
        """The last line, when the input does not end with a newline."""
        return [self._take()] if self._line or self._over else []

    def _add(self, part: bytes) -> None:
        if self._over is not None:
            self._over = TooLarge(self._over.head, (self._over.tail + part)[-ID_WINDOW:])
        elif len(self._line) + len(part) > MAX_LINE_BYTES:
            line = self._line + part
            self._over = TooLarge(bytes(line[:ID_WINDOW]), bytes(line[-ID_WINDOW:]))
            self._line = bytearray()
        else:
            self._line += part

    def _take(self) -> bytes | TooLarge:
        line: bytes | TooLarge = self._over or bytes(self._line)
        self._line, self._over = bytearray(), None
        return line


def check(line: bytes | TooLarge) -> JSONRPCMessage | Rejected | None:
    """The line's message, if the SDK will serve it; else the answer it gets.

    None: nothing to answer (a blank line, or a malformed response: JSON-RPC never answers a response).
    """
    if isinstance(line, TooLarge):
        text = (line.head + b"\n" + line.tail).decode("utf-8", errors="replace")
        return Rejected(PARSE_ERROR, f"request too large: a line may hold at most {MAX_LINE_BYTES} bytes "
                        f"({MAX_LINE_BYTES // 2**20} MiB); send less in one request", find_id(text))
    if not line.strip(b" \t\r"):
        return None  # framing noise, not a message: there is nothing to answer
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejected(PARSE_ERROR, f"parse error: the line is not valid UTF-8 (byte {exc.start}); "
                        "send JSON text encoded as UTF-8", find_id(line.decode("utf-8", errors="replace")))
    if text.count("[") + text.count("{") > MAX_DEPTH and nests_deeper(text, MAX_DEPTH):
        return too_deep(text)
    try:
        message = jsonrpc_message_adapter.validate_json(text, by_name=False)  # as the SDK's reader will
    except ValidationError:
        return diagnose(text)
    if isinstance(message, JSONRPCNotification) and "id" in as_object(text):
        return Rejected(INVALID_REQUEST, f"invalid request: {ID_RULE}", None)  # the SDK took it for a notification
    return message


class Wire:
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
            os.set_blocking(fd, False)  # `claimed` restores it
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
            os.set_blocking(fd, False)  # `claimed` restores it
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
