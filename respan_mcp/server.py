"""The MCP server on the SDK's public low-level API, and the one path every tool call takes.

`call_tool` is that path: the tool's arguments parsed once by its model, the key this
call uses, the tool (checks, then the API), errors turned into messages an agent can act
on, the JSON call log, and the count of calls in flight that draining waits for.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
from mcp import types
from mcp.server.apps import EXTENSION_ID as APPS_EXTENSION
from mcp.server.apps import client_supports_apps
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, ValidationError
from pydantic_core import to_json

from respan_mcp import prompts
from respan_mcp.calllog import CallLine, CallLog, StatusRecorder
from respan_mcp.client import RespanClient, package_version
from respan_mcp.config import Config
from respan_mcp.errors import RespanError
from respan_mcp.evaluator_cache import Described, EvaluatorCache
from respan_mcp.keys import KeyPolicy, KeyRefused
from respan_mcp.models import PAIRING_TABLE_TEXT, ScoreValueError
from respan_mcp.panel import PANEL_MIME, PANEL_URI, panel_html
from respan_mcp.results import BatchResult, NotAScoreError
from respan_mcp.schema import decode_json_text, describe_invalid
from respan_mcp.tools import TOOLS, Call, Tool

logger = logging.getLogger(__name__)

INSTRUCTIONS = f"""\
Write evaluation scores into Respan. If you do not know an evaluator's type, call list_evaluators
first: it gives each evaluator's value field, range, choices and passing condition; get_evaluator
gives one evaluator whole, with its description and scoring rubric (read it before you grade).
upsert_log_score creates or updates the score a log has for one evaluator (calling it again updates
that score); update_score changes a score by its id; upsert_log_scores writes many at once. With
dry_run: true the writes check everything and show the request they would send and whether the value
would pass, writing nothing. Write results carry is_passed (Respan's verdict) and passing_condition.
get_score and list_log_scores read scores back; the self_grade prompt walks you through grading a run.
Send exactly one value field, the one the evaluator's score_value_type takes: {PAIRING_TABLE_TEXT}."""

SELF_GRADE = types.Prompt(
    name="self_grade",
    title="Grade your own run",
    description="Grade your own run in Respan: learn each evaluator, judge honestly, write the scores, report them.",
    arguments=[
        types.PromptArgument(name="log_id", description="ID of the Respan log (span) of the run to grade.", required=True),
        types.PromptArgument(name="evaluators", description="Comma-separated evaluator slugs to score on.", required=False),
        types.PromptArgument(name="rubric", description="What good looks like for this run, in your words.", required=False),
    ],
)


class ServerState:
    """What outlives one call: the Respan client (and the evaluator cache over it), the key
    policy, and the counters the transports drain and health-check with.

    SSE enters the server lifespan once per connection, streamable HTTP once per process
    and stdio once: sharing the client across entries keeps one connection pool whatever
    the transport.
    """

    def __init__(self, config: Config, transport: httpx2.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self.keys = KeyPolicy(server_has_key=bool(config.api_key), allow_server_key=config.allow_server_key)
        self.in_flight = 0  # tool calls running; an HTTP replica drains until it is 0
        self.draining = False  # set by the HTTP transport on SIGTERM: /readyz answers 503
        self.shutting_down: anyio.Event | None = None  # set by the stdio transport when the process must end
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
    with_panel = types.ListToolsResult(tools=[panel_listing(tool) for tool in TOOLS])

    def caller_key(ctx: ServerRequestContext[ServerState]) -> str | None:
        """The key a request is served with (keys.KeyPolicy); a signed-in caller's is the server's."""
        return state.keys.caller_key(request_headers(ctx), signed_in=get_access_token() is not None)

    async def list_tools(
        ctx: ServerRequestContext[ServerState], _params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return with_panel if shows_panel(ctx) else plain

    async def list_resources(
        _ctx: ServerRequestContext[ServerState], _params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=[PANEL_RESOURCE])

    async def read_resource(
        _ctx: ServerRequestContext[ServerState], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        if str(params.uri) != PANEL_URI:
            raise MCPError(types.INVALID_PARAMS, f"Unknown resource '{params.uri}'; this server has {PANEL_URI}.")
        content = types.TextResourceContents(
            uri=PANEL_URI, mime_type=PANEL_MIME, text=panel_html(), meta={"ui": {"prefersBorder": True}}
        )
        return types.ReadResourceResult(contents=[content])

    async def call_tool(
        ctx: ServerRequestContext[ServerState], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        tool = tools.get(params.name)
        if tool is None:
            return text_error(f"Unknown tool '{params.name}'; the tools are: {', '.join(tools)}.")
        headers = request_headers(ctx)
        arguments = params.arguments or {}
        state.in_flight += 1
        try:
            if state.call_log is None:
                return await run_tool(ctx, tool, arguments, headers, None)
            async with state.call_log.record(tool.name, headers) as line:
                return await run_tool(ctx, tool, arguments, headers, line)
        finally:
            state.in_flight -= 1

    async def run_tool(
        ctx: ServerRequestContext[ServerState],
        tool: Tool[Any],
        arguments: dict[str, Any],
        headers: Mapping[str, str] | None,
        line: CallLine | None,
    ) -> types.CallToolResult:
        signed_in = get_access_token()  # set by the bearer middleware when the team's sign-in is on
        if signed_in is not None and line is not None:
            line.caller = who(signed_in)
        try:
            parsed = tool.arguments.model_validate(decode_json_text(arguments, tool.structured))
            call = Call(
                config=config,
                client=state.client,
                evaluators=state.evaluators,
                api_key=state.keys.caller_key(headers, signed_in=signed_in is not None),
                progress=ctx.session.report_progress,
                shutting_down=state.shutting_down,
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

    async def list_prompts(
        _ctx: ServerRequestContext[ServerState], _params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        return types.ListPromptsResult(prompts=[SELF_GRADE])

    async def get_prompt(
        ctx: ServerRequestContext[ServerState], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        """self_grade, with what Respan says each named evaluator means, looked up with the caller's key."""
        arguments = params.arguments or {}
        if params.name != SELF_GRADE.name:
            raise MCPError(types.INVALID_PARAMS, f"Unknown prompt '{params.name}'; the prompt is self_grade.")
        if not arguments.get("log_id"):
            raise MCPError(types.INVALID_PARAMS, "self_grade needs log_id: the ID of the Respan log of the run to grade.")
        evaluators, rubric = arguments.get("evaluators"), arguments.get("rubric")
        described = Described(found=[], unknown=[], unreachable=False)
        if slugs := prompts.named_slugs(evaluators):
            try:
                key = caller_key(ctx)
            except KeyRefused:  # no lookup on behalf of a caller who may not use the server's key
                described = Described(found=[], unknown=[], unreachable=True)
            else:
                described = await state.evaluators.describe(slugs, key)
        text = prompts.self_grade_text(arguments["log_id"], evaluators, rubric, *described)
        return types.GetPromptResult(
            description=SELF_GRADE.description,
            messages=[types.PromptMessage(role="user", content=types.TextContent(type="text", text=text))],
        )

    async def complete(
        ctx: ServerRequestContext[ServerState], params: types.CompleteRequestParams
    ) -> types.CompleteResult:
        """Evaluator slugs for self_grade's `evaluators`, found with the caller's key or a key we may lend."""
        ref, argument = params.ref, params.argument
        nothing = types.CompleteResult(completion=types.Completion(values=[]))
        if not (isinstance(ref, types.PromptReference) and ref.name == SELF_GRADE.name and argument.name == "evaluators"):
            return nothing
        try:
            key = caller_key(ctx)
        except KeyRefused:  # this caller may not use the server's key: no lookup on its behalf
            return nothing
        if not (key or config.api_key):
            return nothing
        current = argument.value.rpartition(",")[2].strip()
        try:
            page = await state.evaluators.search(current or None, 1, 100, key)
        except RespanError:
            return nothing
        slugs = [e.evaluator_slug for e in page.evaluators if e.evaluator_slug]
        return types.CompleteResult(completion=types.Completion(values=prompts.complete_slugs(argument.value, slugs)))

    server = Server(
        "respan",
        version=package_version(),
        title="Respan scores",
        instructions=INSTRUCTIONS,
        lifespan=state.lifespan,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
        on_completion=complete,
        on_list_resources=list_resources,
        on_read_resource=read_resource,
    )
    server.extensions[APPS_EXTENSION] = {}  # the public map the SDK advertises under capabilities.extensions
    return server


# The tools whose results the panel draws: a page of scores, one score, a batch's report.
PANEL_TOOLS = frozenset({"list_log_scores", "get_score", "upsert_log_score", "update_score", "upsert_log_scores"})
PANEL_RESOURCE = types.Resource(
    uri=PANEL_URI,
    name="log-scores",
    title="Respan scores",
    description="A panel that draws a log's scores: values within the evaluator's range, pass/fail, choices.",
    mime_type=PANEL_MIME,
)


def panel_listing(tool: Tool[Any]) -> types.Tool:
    """The tool as hosts that render MCP Apps see it: tied to the panel by `_meta.ui.resourceUri`."""
    if tool.name not in PANEL_TOOLS:
        return tool.listing
    return tool.listing.model_copy(update={"meta": {"ui": {"resourceUri": PANEL_URI}}})


def shows_panel(ctx: ServerRequestContext[Any, Any]) -> bool:
    """Tie tools to the panel unless the client said what it supports and MCP Apps was not in it.

    A stateless HTTP request may carry no client capabilities at all; the `_meta` is then
    included, as hosts ignore what they do not render. Results are the same for every host.
    """
    return ctx.session.client_capabilities is None or client_supports_apps(ctx)


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


def failure(tool: Tool[Any], error: Exception) -> types.CallToolResult:
    """The one wording of every way a call can fail: what was wrong, and whether anything was sent."""
    if isinstance(error, ValidationError):
        return text_error(f"{describe_invalid(error, tool.arguments)}. Nothing was sent.")
    if isinstance(error, ScoreValueError):
        return text_error(f"{error}. Nothing was sent.")
    if isinstance(error, RespanError | KeyRefused | NotAScoreError):
        return text_error(str(error))
    # A fault of ours: the agent still gets a sentence, never the SDK's bare "Error executing tool".
    logger.error("%s failed unexpectedly (%s)", tool.name, type(error).__name__, exc_info=logger.isEnabledFor(logging.DEBUG))
    return text_error(
        f"{tool.name} failed inside respan-mcp ({type(error).__name__}); whether anything reached Respan is "
        f"unknown. Read back with list_log_scores or get_score before sending it again."
    )


def text_error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)
