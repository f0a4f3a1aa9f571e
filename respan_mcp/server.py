"""The MCP server on the SDK's public low-level API, the key policy, and the one path every tool call takes.

`call_tool` is that path: the tool's arguments parsed once by its model, the `Caller`
resolved once by the key policy, the tool run with both (checks, then the API), every failure
worded once (`failures.failure`), the JSON call log, and the count of calls in flight that
draining waits for. The prompt's handlers live in `prompts.py`, the panel's in `panel.py`, the
text an agent is given at initialize in `instructions.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
from mcp import types
from mcp.server.apps import EXTENSION_ID as APPS_EXTENSION
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from pydantic import BaseModel
from pydantic_core import to_json

from respan_mcp import logs, panel, reads, writes
from respan_mcp.calllog import CallLine, CallLog, StatusRecorder
from respan_mcp.client import RespanClient
from respan_mcp.config import Config
from respan_mcp.errors import InvalidKeyError, KeyRefused, MissingAPIKeyError, RespanError
from respan_mcp.evaluator_cache import EvaluatorCache
from respan_mcp.failures import failure, text_error
from respan_mcp.instructions import INSTRUCTIONS, SANDBOX_NOTE
from respan_mcp.net import Caller, header_safe, is_placeholder, package_version
from respan_mcp.prompts import Prompts
from respan_mcp.results import BatchResult
from respan_mcp.tools import Call, Tool
from respan_mcp.values import decode_json_text

TOOLS: tuple[Tool[Any], ...] = (*writes.TOOLS, *reads.TOOLS, *logs.TOOLS)

# Headers a proxy adds: their presence means loopback no longer says who the caller is.
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")
SEND_YOUR_KEY = "add the header 'Authorization: Bearer <your Respan API key>' to your MCP client's configuration"


class KeyPolicy:
    """Whose Respan key a call is made with: the key policy, in one place.

    On stdio the server's key is the host's own. Over HTTP, `Authorization: Bearer <key>`
    is the caller's key for that call only. A caller without one gets the server's key
    only where the server may lend it: a caller signed in through the team's identity
    provider, a loopback bind that no proxy forwards to, or `--allow-server-key`.
    `loopback_bind` is set by the HTTP transport.
    """

    def __init__(self, server_key: str | None, allow_server_key: bool = False, loopback_bind: bool = False) -> None:
        self.server_key = server_key or None
        self.allow_server_key = allow_server_key
        self.loopback_bind = loopback_bind
        # The server's own caller, worked out once: its key never changes while it runs.
        self._server: Caller | RespanError
        if self.server_key is None:
            self._server = MissingAPIKeyError()
        elif not header_safe(self.server_key):
            self._server = InvalidKeyError(from_caller=False)
        else:
            self._server = Caller(self.server_key, (self.server_key,))

    def caller(self, headers: Mapping[str, str] | None, *, signed_in: bool = False) -> Caller:
        """The caller this call is made for. `headers` is None on stdio and in-process.

        A caller signed in through the identity provider writes with the server's key: its bearer
        token is for us, never for Respan. Raises a KeyUnusableError before anything is sent when
        there is no key this caller may use.
        """
        if headers is not None and not signed_in:
            scheme, _, token = (headers.get("authorization") or "").partition(" ")
            if scheme.lower() == "bearer" and (token := token.strip()):
                if is_placeholder(token):
                    raise InvalidKeyError(from_caller=True, placeholder=True)
                if not header_safe(token):
                    raise InvalidKeyError(from_caller=True)
                return Caller(token, (token, self.server_key) if self.server_key else (token,))
            if refusal := self.refusal(headers):
                raise KeyRefused(f"{refusal}: {SEND_YOUR_KEY}.")
        elif signed_in and self.server_key is None:
            raise KeyRefused(
                "You are signed in, but this server has no Respan API key to write with: ask its operator to "
                "set RESPAN_API_KEY."
            )
        if isinstance(self._server, RespanError):
            raise self._server
        return self._server

    def refusal(self, headers: Mapping[str, str]) -> str | None:
        """Why an HTTP caller without a key of their own may not use the server's; None when they may.

        A loopback bind says the caller is on this machine only while nothing forwards to it:
        behind a proxy every request comes from loopback, so a forwarding header withdraws the
        loan. `--allow-server-key` lends it to whoever can reach the port.
        """
        if self.server_key is None:
            return "This server has no Respan API key of its own"
        if self.allow_server_key:
            return None
        if not self.loopback_bind:
            return "This server lends its Respan API key only to callers on its own machine"
        if any(name in headers for name in FORWARDING_HEADERS):
            return "This server does not lend its Respan API key to requests that came through a proxy"
        return None


class ServerState:
    """What outlives one call: the Respan client (and the evaluator cache over it), the key
    policy, and the counters the transports drain and health-check with.

    SSE enters the server lifespan once per connection, streamable HTTP once per process
    and stdio once: sharing the client across entries keeps one connection pool whatever
    the transport.
    """

    def __init__(self, config: Config, transport: httpx2.AsyncBaseTransport | None = None) -> None:
        self.config = config
        if transport is None and config.sandbox and config.sandbox_db:
            from respan_mcp.standin.sandbox import sandbox_transport  # only under --sandbox: never on a cold start

            transport = sandbox_transport(config.sandbox_db)
        self.keys = KeyPolicy(config.api_key, allow_server_key=config.allow_server_key)
        self.in_flight = 0  # tool calls running; an HTTP replica drains until it is 0
        self.draining = False  # set by the HTTP transport on SIGTERM: /readyz answers 503
        self.shutting_down: anyio.Event | None = None  # set by the transport when the process must end soon
        self.call_log = CallLog() if config.log_format == "json" else None
        self._transport = StatusRecorder(transport) if self.call_log is not None else transport
        self._client: RespanClient | None = None
        self._evaluators: EvaluatorCache | None = None
        self._users = 0

    @property
    def client(self) -> RespanClient:
        if self._client is None or self._client.is_closed:
            self._client = RespanClient(self.config, transport=self._transport)
            self._evaluators = None
        return self._client

    @property
    def evaluators(self) -> EvaluatorCache:
        client = self.client
        if self._evaluators is None:
            self._evaluators = EvaluatorCache(client, ttl=self.config.evaluator_ttl)
        return self._evaluators

    def caller(self, ctx: ServerRequestContext[Any, Any]) -> Caller:
        """The request's caller by the key policy; a signed-in caller's is the server's."""
        return self.keys.caller(request_headers(ctx), signed_in=get_access_token() is not None)

    @asynccontextmanager
    async def lifespan(self, _server: Server[ServerState]) -> AsyncIterator[ServerState]:
        self._users += 1
        try:
            yield self
        finally:
            self._users -= 1
            if self._users == 0 and self._client is not None:
                with anyio.CancelScope(shield=True):  # close the pool even when shutdown cancels us
                    await self._client.aclose()


def request_headers(ctx: ServerRequestContext[Any, Any]) -> Mapping[str, str] | None:
    """The HTTP request's headers, or None on stdio and in-process."""
    headers = getattr(ctx.request, "headers", None)
    return headers if isinstance(headers, Mapping) else None


def build_server(
    config: Config, *, transport: httpx2.AsyncBaseTransport | None = None, state: ServerState | None = None
) -> Server[ServerState]:
    """A server with its own settings; nothing is registered at import, so tests can build many.

    The transports pass their own `state` to drain and health-check through it.
    """
    state = state or ServerState(config, transport)
    tools: dict[str, Tool[Any]] = {tool.name: tool for tool in TOOLS}
    plain = types.ListToolsResult(tools=[tool.listing for tool in TOOLS])
    shown = types.ListToolsResult(tools=[panel.with_panel(tool.listing) for tool in TOOLS])
    prompt = Prompts(state.caller, lambda: state.client, lambda: state.evaluators)

    async def list_tools(
        ctx: ServerRequestContext[ServerState], _params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return shown if panel.shows_panel(ctx) else plain

    async def call_tool(
        ctx: ServerRequestContext[ServerState], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        tool = tools.get(params.name)
        if tool is None:
            return text_error(f"Unknown tool '{params.name}'; the tools are: {', '.join(tools)}.")
        state.in_flight += 1
        try:
            if state.call_log is None:
                return await run_tool(ctx, tool, params.arguments or {}, None)
            async with state.call_log.record(tool.name, request_headers(ctx)) as line:
                return await run_tool(ctx, tool, params.arguments or {}, line)
        finally:
            state.in_flight -= 1

    async def run_tool(
        ctx: ServerRequestContext[ServerState], tool: Tool[Any], arguments: dict[str, Any], line: CallLine | None
    ) -> types.CallToolResult:
        signed_in = get_access_token()  # set by the bearer middleware when the team's sign-in is on
        if signed_in is not None and line is not None:
            line.caller = who(signed_in)
        try:
            parsed = tool.arguments.model_validate(decode_json_text(arguments, tool.structured))
            caller = state.keys.caller(request_headers(ctx), signed_in=signed_in is not None)
            call = Call(
                config,
                state.client,
                state.evaluators,
                caller,
                ctx.session.report_progress,
                state.shutting_down,
                ctx.meta,
            )
            result = await tool.run(call, parsed)
        except Exception as exc:
            if line is not None:
                line.failed(exc)
            return failure(tool, exc)
        answer = success(result)
        if answer.is_error and line is not None:
            line.error = "NothingWritten"
        return answer

    server = Server(
        "respan",
        version=package_version(),
        title="Respan scores",
        instructions=INSTRUCTIONS + (SANDBOX_NOTE if config.sandbox else ""),
        lifespan=state.lifespan,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_prompts=prompt.list_prompts,
        on_get_prompt=prompt.get_prompt,
        on_completion=prompt.complete,
        on_list_resources=panel.list_resources,
        on_list_resource_templates=panel.list_resource_templates,
        on_read_resource=panel.read_resource,
    )
    server.extensions[APPS_EXTENSION] = {}  # the public map the SDK advertises under capabilities.extensions
    return server


def who(caller: AccessToken) -> dict[str, str]:
    """A signed-in caller for the call log: client, subject and email, never the token."""
    fields = {"client_id": caller.client_id, "sub": getattr(caller, "subject", None), "email": getattr(caller, "email", None)}
    return {name: value for name, value in fields.items() if isinstance(value, str) and value}


def success(result: BaseModel) -> types.CallToolResult:
    """A result model as text and structured content (dumped once, on the hot path); a batch that
    wrote nothing is an error, with its report."""
    data = result.model_dump(mode="json")
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=to_json(data).decode())],
        structured_content=data,
        is_error=isinstance(result, BatchResult) and result.is_error,
    )
