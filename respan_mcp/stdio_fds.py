"""The process's stdin and stdout while serving over stdio: claimed for the wire, written without threads.

The SDK claims fd 0 and 1 for the streams it opens (a private copy for the wire; fd 0 pointed at
the null device and fd 1 at stderr, so a child cannot read the host's lines and a stray print
never lands on the wire) and skips that for streams passed in; `claimed` does the same for ours.

`PipeWriter` writes answers to a pipe or socket in the event loop. The SDK's own writer writes
and flushes each answer through worker threads: two thread hops per answer, about 60 µs of CPU
each, more than respan-mcp's own work on a call.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import anyio

if sys.platform != "win32":
    import fcntl

logger = logging.getLogger(__name__)


class PipeWriter:
    """The SDK's stdout (`write`, `flush`) over a pipe or socket, written in the event loop.

    `write` returns once the kernel holds every byte: nothing is buffered here, so a host that
    reads slowly holds the writer back (and, through the SDK's unbuffered streams, the server),
    and the graceful end has nothing left to drain.
    """

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self._fd = fd
        self._gone = False  # the host closed its end of stdout: nothing written can reach it

    async def write(self, text: str) -> None:
        data = memoryview(text.encode())
        while data and not self._gone:
            try:
                data = data[os.write(self._fd, data) :]
            except BlockingIOError:
                await anyio.wait_writable(self._fd)
            except BrokenPipeError:
                # No one reads the answers any more; the server ends when stdin does, quietly.
                logger.info("the host closed stdout; answers are dropped until stdin ends")
                self._gone = True

    async def flush(self) -> None:
        pass  # `write` has already handed everything to the kernel


@contextmanager
def stdout_writer() -> Iterator[PipeWriter | None]:
    """A `PipeWriter` on a claimed copy of fd 1 when it is a pipe or socket; else None, for the SDK's writer."""
    if not _own_pipe(1):
        yield None
        return
    with claimed(1, _open_stderr) as fd:
        yield None if fd is None else PipeWriter(fd)


def _own_pipe(fd: int) -> bool:
    """Whether `fd` is a pipe or socket that stderr does not share.

    A regular file cannot be waited on; a terminal, or a pipe that is also stderr (`2>&1`), is
    one open file with other writers, whose writes would fail when it is full were it non-blocking.
    """
    try:
        mode = os.fstat(fd)
    except OSError:
        return False
    if os.name != "posix" or not (stat.S_ISFIFO(mode.st_mode) or stat.S_ISSOCK(mode.st_mode)):
        return False
    try:
        return not os.path.samestat(mode, os.fstat(2))
    except OSError:
        return True  # no stderr


@contextmanager
def claimed(fd: int, divert: Callable[[], int]) -> Iterator[int | None]:
    """A private copy of `fd` for the wire while `fd` points at what `divert` opens; then `fd` as it was.

    The copy is above the standard range and closed on exec. The open file's blocking mode, which
    the event loop changes, is restored for whoever shares it (the host, a shell). None: `fd` is
    not open.
    """
    if os.name != "posix":
        yield fd  # not claimed, as the SDK serves when it cannot divert
        return
    try:
        private = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    except OSError:
        yield None
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
        os.dup2(private, fd)
        os.close(private)


def open_null() -> int:
    """What fd 0 points at while serving: a child reads an empty stdin."""
    return os.open(os.devnull, os.O_RDONLY)


def _open_stderr() -> int:
    try:
        return os.dup(2)
    except OSError:
        return os.open(os.devnull, os.O_WRONLY)
