"""What a stdio session does to its process, once at its start and end, never per line: the
file descriptors it claims and the signals it takes.

The file-descriptor rules are the SDK's, copied on purpose (`_claim_fd` in mcp/server/stdio.py).

The wire is served from a private duplicate above the standard range, closed on exec; while
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
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import anyio

from respan_mcp.config import SHUTDOWN_GRACE

if sys.platform != "win32":
    import fcntl

logger = logging.getLogger(__name__)

_claims: set[int] = set()  # the standard fds being served; a second claim is refused
_claims_lock = threading.Lock()


@contextmanager
def claimed(fd: int, divert: Callable[[], int]) -> Iterator[int | None]:
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


def open_null() -> int:
    return os.open(os.devnull, os.O_RDONLY)


def open_stderr() -> int:
    try:
        return os.dup(2)
    except OSError:
        return os.open(os.devnull, os.O_WRONLY)


async def stop_on_signal(stop_reading: Callable[[], None], scope: anyio.CancelScope) -> None:
    """The first SIGTERM or SIGINT stops reading (the answers owed are still written); a second cancels `scope`."""
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
            stop_reading()
            break
        with anyio.move_on_after(SHUTDOWN_GRACE + 5):  # the graceful end normally cancels this wait
            async for _ in signals:
                break  # a second signal: stop now
        scope.cancel()
