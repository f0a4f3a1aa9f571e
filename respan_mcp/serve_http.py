"""Serving the server: stdio for a host that starts it, SSE and streamable HTTP to serve many.

Shutdown is graceful on every transport: on SIGTERM or SIGINT, or when the host
closes stdin, calls already in flight finish (for at most `SHUTDOWN_GRACE`
seconds) and the HTTP client is closed before the process exits with 0.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import anyio
import uvicorn
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend, RequireAuthMiddleware
from mcp.server.auth.routes import build_resource_metadata_url, create_protected_resource_routes
from mcp.server.auth.settings import AuthSettings
from mcp.server.lowlevel import Server
from mcp.server.sse import SseServerTransport
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import AnyHttpUrl
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Receive, Scope, Send

from respan_mcp import calllog
from respan_mcp.auth import IdentityProviderVerifier, Introspection, auth_settings
from respan_mcp.config import Config, is_loopback
from respan_mcp.http_drain import CLOSE_GRACE, DrainGate, drain_on_signal
from respan_mcp.identity_provider import IdentityProviderError
from respan_mcp.server import ServerState, build_server

logger = logging.getLogger(__name__)


def run(config: Config) -> None:
    """Serve SSE or streamable HTTP until a signal stops the process (draining first)."""
    host, port, transport = config.host, config.port, config.transport
    state = ServerState(config)
    server = build_server(config, state=state)
    calllog.configure(config.log_format, config.log_level)
    state.keys.loopback_bind = is_loopback(host)
    if not state.keys.loopback_bind and not config.oauth_issuer:
        calllog.notice(config.log_format, _network_notice(host, config))
    verifier = sign_in(config)
    app = sse_app(server, state, config, verifier) if transport == "sse" else streamable_http_app(server, state, config, verifier)
    gate = DrainGate(app, state, config.endpoint, count=transport != "sse")
    uvicorn_config = uvicorn.Config(
        gate,
        host=host,
        port=port,
        log_level=config.log_level.lower(),
        timeout_graceful_shutdown=CLOSE_GRACE,
        lifespan="on",  # the gate learns from the lifespan's startup when its signal handlers may take over
        log_config=None if config.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
    )
    anyio.run(_serve, uvicorn.Server(uvicorn_config), gate, verifier)


async def _serve(server: uvicorn.Server, gate: DrainGate, verifier: IdentityProviderVerifier | None) -> None:
    """uvicorn, with the signals taken to drain first, and the identity provider's keys fetched beside it
    (/readyz says 503 until they are)."""
    gate.state.shutting_down = anyio.Event()  # set when draining starts: running batches report early
    async with anyio.create_task_group() as group:
        if verifier is not None:
            group.start_soon(_load_keys, verifier)
        group.start_soon(drain_on_signal, server, gate)
        group.start_soon(_announce, server, gate.state)
        await server.serve()
        group.cancel_scope.cancel()
    if verifier is not None:
        await verifier.aclose()


async def _announce(server: uvicorn.Server, state: ServerState) -> None:
    """One line on stderr once the server listens: the URL a client connects to, the health endpoints, and
    whose key the calls use. uvicorn says when it has started only by `started`, so it is looked at."""
    while not server.started:
        await anyio.sleep(0.05)
    config = state.config
    port = next((sock.getsockname()[1] for listener in server.servers for sock in listener.sockets), config.port)
    host = f"[{config.host}]" if ":" in config.host else config.host
    base = f"http://{host}:{port}"
    calllog.notice(
        config.log_format,
        f"serving {config.transport} at {base}{config.endpoint} (health: {base}/healthz, {base}/readyz); "
        f"{whose_key(state, config)}",
    )


def whose_key(state: ServerState, config: Config) -> str:
    """Whose Respan key the calls use, in words (the key policy's, as it stands for this bind)."""
    if config.oauth_issuer:
        return f"callers sign in with {config.oauth_issuer}; their calls use the server's Respan key"
    own = "each caller's own Respan key (Authorization: Bearer <key>)"
    if not config.api_key:
        return f"calls use {own}; this server has no key of its own"
    if config.allow_server_key:
        return f"calls use {own}, or the server's key for callers without one"
    if state.keys.loopback_bind:
        return f"calls use {own}, or the server's key for callers on this machine that send none"
    return f"calls use {own}; the server's key is not lent beyond loopback"


async def _load_keys(verifier: IdentityProviderVerifier) -> None:
    try:
        await verifier.load()
    except IdentityProviderError as exc:  # not fatal: /readyz stays 503 and ready() tries again
        logger.warning("the identity provider's keys could not be loaded yet: %s", exc)


def sign_in(config: Config) -> IdentityProviderVerifier | None:
    """The token verifier for the team's identity provider, when RESPAN_OAUTH_ISSUER is set."""
    if not config.oauth_issuer:
        return None
    introspection = (
        Introspection(config.oauth_client_id, config.oauth_client_secret, config.oauth_introspection_url)
        if config.oauth_client_id and config.oauth_client_secret
        else None
    )
    return IdentityProviderVerifier(config.oauth_issuer, config.audience, introspection=introspection)


def health_routes(state: ServerState, verifier: IdentityProviderVerifier | None) -> list[Route]:
    return [
        Route("/healthz", _healthz, methods=["GET"]),
        Route("/readyz", functools.partial(_readyz, state, verifier), methods=["GET"]),
    ]


def streamable_http_app(
    server: Server[ServerState], state: ServerState, config: Config, verifier: IdentityProviderVerifier | None
) -> Starlette:
    """Streamable HTTP at /mcp, stateless: any replica behind a load balancer can answer any request."""
    return server.streamable_http_app(
        stateless_http=True,
        host=config.host,
        transport_security=_security(config.host),
        custom_starlette_routes=health_routes(state, verifier),
        auth=_auth_settings(config) if verifier else None,
        token_verifier=verifier,
    )


def sse_app(
    server: Server[ServerState], state: ServerState, config: Config, verifier: IdentityProviderVerifier | None
) -> Starlette:
    """The legacy HTTP+SSE transport (deprecated by the MCP revision of 2026-07-28, still asked for):
    a stream at /sse, messages posted to /messages/; with sign-in, both behind the bearer check."""
    sse = SseServerTransport("/messages/", security_settings=_security(config.host))
    stream: Any = _SseStream(server, sse)
    messages: Any = sse.handle_post_message
    middleware: list[Middleware] = []
    routes: list[BaseRoute] = []
    if verifier is not None:
        settings = _auth_settings(config)
        scopes = list(config.oauth_scopes)
        metadata = build_resource_metadata_url(AnyHttpUrl(config.resource_url))
        stream = RequireAuthMiddleware(stream, scopes, metadata)
        messages = RequireAuthMiddleware(messages, scopes, metadata)
        middleware = [
            Middleware(AuthenticationMiddleware, backend=BearerAuthBackend(verifier)),
            Middleware(AuthContextMiddleware),
        ]
        routes = list(
            create_protected_resource_routes(
                resource_url=AnyHttpUrl(config.resource_url),
                authorization_servers=[settings.issuer_url],
                scopes_supported=settings.required_scopes,
            )
        )
    return Starlette(
        routes=[
            Route("/sse", stream, methods=["GET"]),
            Mount("/messages/", app=messages),
            *routes,
            *health_routes(state, verifier),
        ],
        middleware=middleware,
    )


def _auth_settings(config: Config) -> AuthSettings:
    assert config.oauth_issuer is not None
    return auth_settings(config.resource_url, config.oauth_issuer, list(config.oauth_scopes))


class _SseStream:
    """ASGI endpoint of /sse: one server session per stream (Starlette hands a class instance the raw ASGI call)."""

    def __init__(self, server: Server[ServerState], sse: SseServerTransport) -> None:
        self.server, self.sse = server, sse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with self.sse.connect_sse(scope, receive, send) as (read, write):
            await self.server.run(read, write, self.server.create_initialization_options())


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


async def _readyz(state: ServerState, verifier: IdentityProviderVerifier | None, _request: Request) -> Response:
    """Ready for new calls: 503 while draining (a load balancer sends them elsewhere), and, with
    sign-in, until the identity provider's keys are loaded (no token could be checked before)."""
    if state.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    if verifier is not None and not await verifier.ready():
        return JSONResponse({"status": "waiting for the identity provider's keys"}, status_code=503)
    return JSONResponse({"status": "ready"})
