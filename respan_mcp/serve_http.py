"""Serving the server: stdio for a host that starts it, SSE and streamable HTTP to serve many.

Shutdown is graceful on every transport: on SIGTERM or SIGINT, or when the host
closes stdin, calls already in flight finish (for at most `SHUTDOWN_GRACE`
seconds) and the HTTP client is closed before the process exits with 0.
"""

from __future__ import annotations

import functools
import ipaddress
import signal
import time
from types import FrameType
from typing import Any

import anyio
import uvicorn
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from respan_mcp import calllog
from respan_mcp.config import Config
from respan_mcp.server import ServerState, build_server
from respan_mcp.serve_stdio import SHUTDOWN_GRACE, serve_stdio


def serve(config: Config, *, transport: str = "stdio", host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run until the host closes stdin, or a signal stops the process."""
    server = build_server(config)
    calllog.configure(config.log_format, config.log_level)  # after the SDK's own logging set-up, to replace it
    if transport == "stdio":
        anyio.run(serve_stdio, server._lowlevel_server)
        return

    state: ServerState = server.state
    state.loopback_bind = is_loopback(host)
    if not state.loopback_bind:
        calllog.notice(config.log_format, _network_notice(host, config))
    server.custom_route("/healthz", methods=["GET"])(_healthz)
    server.custom_route("/readyz", methods=["GET"])(functools.partial(_readyz, state))
    security = _security(host)
    if transport == "sse":
        app = server.sse_app(host=host, transport_security=security)
    else:
        # Stateless: any replica behind a load balancer can answer any request.
        app = server.streamable_http_app(stateless_http=True, host=host, transport_security=security)
    gate = _DrainGate(app, state, "/sse" if transport == "sse" else "/mcp", count=transport != "sse")
    uvicorn_config = uvicorn.Config(
        gate,
        host=host,
        port=port,
        log_level=config.log_level.lower(),
        timeout_graceful_shutdown=int(SHUTDOWN_GRACE),
        log_config=None if config.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
    )
    anyio.run(_DrainingServer(uvicorn_config, state, gate).serve)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def _security(host: str) -> TransportSecuritySettings | None:
    """On a loopback bind, refuse a foreign Host or Origin (DNS rebinding), as the SDK does for 127.0.0.1.

    On a network bind the names a caller may use (a DNS name, a proxy's upstream name, a pod
    address) cannot be known here, so the SDK leaves Host unchecked; the key rule keeps such a
    bind from lending the server's key to anyone who sends no key of their own.
    """
    if not is_loopback(host):
        return None
    hosts = list(dict.fromkeys(["127.0.0.1", "localhost", "[::1]", f"[{host}]" if ":" in host else host]))
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts + [f"{name}:*" for name in hosts],  # a proxy in front may send `Host: localhost`
        allowed_origins=[f"http://{name}:*" for name in hosts],
    )


def _network_notice(host: str, config: Config) -> str:
    if config.allow_server_key and config.api_key:
        policy = "--allow-server-key is set: every caller who can reach this port may use the server's Respan key"
    else:
        policy = (
            "each caller must send its own Respan key as 'Authorization: Bearer <key>'; the server's key is "
            "lent only on a loopback bind (or with --allow-server-key)"
        )
    return f"listening on {host}, which is not a loopback address: {policy}."


async def _healthz(_request: Request) -> Response:
    """The process is up. No key, no request to Respan."""
    return JSONResponse({"status": "ok"})


async def _readyz(state: ServerState, _request: Request) -> Response:
    """Ready for new calls: 503 once draining, so a load balancer sends them elsewhere."""
    if state.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    return JSONResponse({"status": "ready"})


class _DrainGate:
    """ASGI wrapper: while draining, new MCP work is answered 503, so a proxy retries it on another replica.

    Streamable HTTP requests are counted from arrival to last byte, so draining waits
    for a request even before its tool call has started. On SSE only new streams are
    refused: calls on an open stream belong to this replica and are counted as tool calls.
    """

    def __init__(self, app: Any, state: ServerState, path: str, *, count: bool) -> None:
        self.app, self.state, self.path, self.count = app, state, path, count
        self.in_flight = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") != self.path:
            await self.app(scope, receive, send)
            return
        if self.state.draining:
            busy = JSONResponse(
                {"detail": "This replica is shutting down; send the request again (another replica will answer)."},
                status_code=503,
                headers={"Retry-After": "1", "Connection": "close"},
            )
            await busy(scope, receive, send)
            return
        self.in_flight += self.count
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= self.count


class _DrainingServer(uvicorn.Server):
    """uvicorn, with its signal handling taught to drain first.

    On SIGTERM or SIGINT /readyz says 503, new MCP work is refused (see _DrainGate),
    and the calls in flight finish (for at most SHUTDOWN_GRACE seconds); then uvicorn's own shutdown
    closes the listener and lets open responses complete. A second signal stops at once.
    The signal is not recorded for uvicorn to raise again after shutdown, which would
    end the process by that signal instead of with exit code 0.
    """

    def __init__(self, config: uvicorn.Config, state: ServerState, gate: _DrainGate) -> None:
        super().__init__(config)
        self.state, self.gate = state, gate
        self._drain_until: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain_until is None:
            self.state.draining = True
            self._drain_until = time.monotonic() + SHUTDOWN_GRACE
        else:
            self.should_exit = True
            self.force_exit = sig == signal.SIGINT

    async def on_tick(self, counter: int) -> bool:
        if self._drain_until is not None and not self.should_exit:
            idle = self.state.in_flight == 0 and self.gate.in_flight == 0
            self.should_exit = idle or time.monotonic() >= self._drain_until
        return await super().on_tick(counter)
