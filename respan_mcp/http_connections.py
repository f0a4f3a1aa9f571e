"""How many connections an HTTP replica holds, and how long a client may take over a request's headers.

A client that connects and sends nothing (or half a request head) holds a file descriptor. Without a
bound, a thousand of them use up the process's descriptors: the listener can accept no one, and a
legitimate call waits until they leave. So:

- at start the soft RLIMIT_NOFILE is raised as far as the hard limit lets it, and the number of
  connections is bounded below it, with room left for the Respan client's connections, the log
  and the sockets being accepted;
- a connection has `header_timeout` seconds (RESPAN_HEADER_TIMEOUT) to send a complete request
  head, when it opens and again after each response on a kept-alive connection; then it is closed;
- at the bound, a new connection closes the one that has waited longest for its head (a slow
  client, or an idle kept-alive one), and is refused with 503 only when every connection is busy
  with a request.

A request's body has its own deadline (http_drain.BODY_DEADLINE). A reverse proxy in front remains
the first line; these bounds keep a replica answering when it is reached directly.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass, field
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger(__name__)

# Descriptors kept out of the connection bound: the listener, the event loop, stdio, the log, the
# sandbox's database, the identity provider's client (the Respan client's are added per its bound).
RESERVED_FDS = 128
# Sockets accepted at once: asyncio accepts up to the listen backlog in one go, before any of them
# can close an older connection, so the bound leaves this many descriptors free for them.
BACKLOG = 128
MOST_FDS = 65_536  # how far the soft limit is raised at most (a hard limit may be "unlimited")
FEWEST_CONNECTIONS = 16  # the bound, however low the descriptor limit

_BUSY = b"This server holds as many connections as it can, all busy with requests; send the request again soon."
_REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
    b"retry-after: 1\r\ncontent-length: %d\r\n\r\n%s" % (len(_BUSY), _BUSY)
)


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (at most MOST_FDS) and return the soft limit then."""
    if sys.platform == "win32":  # no descriptor limits to raise (nor the module that sets them)
        return MOST_FDS
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MOST_FDS if hard == resource.RLIM_INFINITY else min(hard, MOST_FDS)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError) as exc:  # e.g. macOS caps it below the hard limit it reports
            logger.info("the descriptor limit stays at %d: %s", soft, exc)
    return MOST_FDS if soft == resource.RLIM_INFINITY else soft


def connection_bound(fd_limit: int, api_connections: int) -> int:
    """Most connections held at once with `fd_limit` descriptors, `api_connections` of them to Respan."""
    return max(FEWEST_CONNECTIONS, fd_limit - RESERVED_FDS - BACKLOG - api_connections)


def bounded_protocol(bound: int, deadline: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol with the header deadline and the bound, for `uvicorn.Config(http=...)`.

    A class per server, so each has its own table (uvicorn makes one protocol instance per connection
    from the class it is given, and passes it no arguments of ours).
    """

    class Bounded(BoundedH11Protocol):
        table = Table(bound, deadline)

    return Bounded


@dataclass
class Table:
    """One server's bound and header deadline, and its connections still waiting for a request head."""

    limit: int
    header_timeout: float
    # The longest-waiting first (a dict keeps insertion order), so the one to close is found at once.
    waiting: dict[BoundedH11Protocol, None] = field(default_factory=dict)
    refusing: bool = False  # a connection was refused since the last one was let in: said once, not per connection


class BoundedH11Protocol(H11Protocol):
    """uvicorn has no header timeout, and its `limit_concurrency` answers 503 to the requests that come
    after slow clients instead of dropping the slow clients, so this subclass adds both. It uses
    uvicorn's public attributes (`connections`, the server's set of open ones; `conn`, the h11
    connection, whose `their_state` is IDLE until a request head is complete; `transport`, `loop`)
    and extends the asyncio protocol methods, each calling uvicorn's own.
    """

    table: ClassVar[Table]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        table = self.table
        if len(self.connections) > table.limit:
            oldest = next(iter(table.waiting), None)
            if oldest is None:
                if not table.refusing:
                    logger.warning("%d connections open, all busy with requests: new ones are refused", table.limit)
                table.refusing = True
                transport.write(_REFUSED)
                transport.close()
                return
            logger.debug("%d connections open: the one waiting longest for its headers is closed", table.limit)
            oldest.drop()
        table.refusing = False
        self.await_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # a complete head arrived
            self.table.waiting.pop(self, None)

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            self.await_head()  # the next request's head, on a kept-alive connection
        super().on_response_complete()
        if self.conn.their_state is not h11.IDLE:  # a pipelined request was already read
            self.table.waiting.pop(self, None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.drop()
        super().connection_lost(exc)

    def await_head(self) -> None:
        """Start the header deadline, and put this connection last among those waiting for a head."""
        self.table.waiting.pop(self, None)
        self.table.waiting[self] = None
        if self.head_timer is not None:
            self.head_timer.cancel()
        self.head_timer = self.loop.call_later(self.table.header_timeout, self.head_late)

    def head_late(self) -> None:
        self.head_timer = None
        if self in self.table.waiting:
            logger.debug("no request head within %g s: the connection is closed", self.table.header_timeout)
            self.drop()

    def drop(self) -> None:
        """Close this connection (if still open) and forget it."""
        self.table.waiting.pop(self, None)
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
