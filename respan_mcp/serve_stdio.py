"""Serving over stdio, the transport owned outright: every line read gets an answer, and the end is graceful.

Not the SDK's `mcp.server.stdio.stdio_server`, because what the README promises about stdio lives
at the level of bytes, which it hides: it reads each line whole in a worker thread (no bound on a
line's size, and a read no signal can end), drops a line it cannot parse without an answer, and
writes every answer through two worker-thread hops. So fd 0 and 1 are read and written here, and
the SDK's `Server.run` gets two plain anyio memory streams.

Each line is checked (`stdio_wire.check`): a bad one gets its own error answer, a good one goes
to the server. stdin may be a pipe, a terminal, a regular file or /dev/null; it is read to its end.
The end comes when stdin ends, or with SIGTERM or SIGINT. Either way reading stops, `on_stop` is
called, the requests already read are answered (for at most `SHUTDOWN_GRACE` seconds), and only
then does the server see the end of its input and shut down, every answer written out. Requests
are counted, not tool calls, so a request read but not started, and a call returned but not yet
written, are both waited for. A second signal stops at once. A host that closes stdout first loses
the answers, and the server ends quietly (exit 0) when stdin does.

This module is the session: it claims the fds, starts the wire and the signal watch, and ends
them. The file-descriptor rules are the SDK's, copied on purpose (`stdio_process.py`, with the
signals). What runs for every line (splitting, the check a good line passes, the answers out)
is `stdio_wire.py`; what only a bad line needs (its diagnosis, its id) is `stdio_lines.py`; so a
warm call crosses one transport module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
from mcp.server.lowlevel import Server

from respan_mcp import calllog
from respan_mcp.config import Config
from respan_mcp.server import ServerState, build_server
from respan_mcp.stdio_process import claimed, open_null, open_stderr, stop_on_signal
from respan_mcp.stdio_wire import Wire


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
    with claimed(0, open_null) as stdin, claimed(1, open_stderr) as stdout:
        wire = Wire(stdin, stdout, on_stop)
        async with anyio.create_task_group() as group:
            group.start_soon(stop_on_signal, wire.stop_reading, group.cancel_scope)
            async with anyio.create_task_group() as session:
                session.start_soon(wire.read)
                session.start_soon(wire.write)
                await server.run(wire.from_host, wire.to_host, server.create_initialization_options())
            group.cancel_scope.cancel()
