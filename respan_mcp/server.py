"""The MCP server: tools built from the score models, forwarded to the Respan API.

Tool schemas are generated from `models.py` (flattened for portability) rather
than from function signatures, so the models stay the one source of truth.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
from mcp.server import MCPServer
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, CompleteRequestParams, CompleteResult, Completion, PromptReference, TextContent

from respan_mcp import prompts
from respan_mcp.batch import MAX_DEADLINE, BatchResult, BatchWrite, is_error, write_batch
from respan_mcp.calllog import CallLog, StatusRecorder
from respan_mcp.client import RespanClient, package_version
from respan_mcp.config import Config
from respan_mcp.errors import RespanError
from respan_mcp.evaluator_cache import EvaluatorCache
from respan_mcp.models import PAIRING_TABLE_TEXT, LogScoreWrite, Score, ScoreUpdate
from respan_mcp.reads import read_tools
from respan_mcp.tooling import caller_key, key_for, model_tool, score_from, tool_answer, validated

INSTRUCTIONS = f"""\
Write evaluation scores into Respan. If you do not know an evaluator's type, call list_evaluators
first: it gives each evaluator's value field, range and choices. upsert_log_score creates or
updates the score a log has for one evaluator (calling it again updates that score);
update_score changes a score by its id; upsert_log_scores writes many at once; get_score and
list_log_scores read scores back; the self_grade prompt walks you through grading a run. Send
exactly one value field, the one the evaluator's score_value_type takes: {PAIRING_TABLE_TEXT}."""


# Headers a proxy adds: their presence means loopback no longer says who the caller is.
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


class ServerState:
    """Owns the one Respan client (and the evaluator cache over it) for the process.

    SSE enters the server lifespan once per connection, streamable HTTP once per
    process and stdio once: sharing the client across entries keeps one
    connection pool whatever the transport.
    """

    def __init__(self, config: Config, transport: httpx2.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self._transport = transport
        self._client: RespanClient | None = None
        self._evaluators: EvaluatorCache | None = None
        self._users = 0
        self.in_flight = 0  # tool calls running; an HTTP replica drains until it is 0
        self.loopback_bind = False  # set by transports.serve: may HTTP callers without a key use ours?
        self.draining = False  # set by transports.serve on SIGTERM: /readyz answers 503
        self._call_log = CallLog() if config.log_format == "json" else None
        if self._call_log is not None:
            self._transport = StatusRecorder(transport)

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

    async def checked_body(self, write: LogScoreWrite | ScoreUpdate, api_key: str | None) -> dict[str, Any]:
        """The request body for a write, after every check that can be made before sending.

        Single and batch writes both come through here, so a rule added here holds for both:
        the core pairing rules, then the evaluator's own type, range and choices when Respan
        describes it. Raises ScoreValueError with a message that says what to send instead.
        """
        body = write.request_body()
        if isinstance(write, LogScoreWrite):
            evaluator = await self.evaluators.for_write(write.evaluator_id, write.evaluator_slug, api_key)
        elif write.score_value_type is None:
            evaluator = await self.evaluators.for_score(write.score_id, api_key)
        else:
            evaluator = None
        if evaluator is not None:
            evaluator.check(write)
        return body

    def server_key_refusal(self, headers: Mapping[str, str]) -> str | None:
        """Why an HTTP caller without a key of their own may not use the server's; None when they may.

        A loopback bind says the caller is on this machine only while nothing forwards
        to it: behind a proxy every request comes from loopback, so a forwarding header
        withdraws the loan. `--allow-server-key` lends it to whoever can reach the port.
        """
        if not self.config.api_key:
            return "This server has no Respan API key of its own"
        if self.config.allow_server_key:
            return None
        if not self.loopback_bind:
            return "This server lends its Respan API key only to callers on its own machine"
        if any(name in headers for name in FORWARDING_HEADERS):
            return "This server does not lend its Respan API key to requests that came through a proxy"
        return None

    def tracked(self, tool: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        """Count the tool's calls in flight, so shutdown can wait for them; log each in json mode."""

        @functools.wraps(tool)
        async def call(ctx: Context, **arguments: Any) -> Any:
            self.in_flight += 1
            try:
                if self._call_log is not None:
                    return await self._call_log.record(tool.__name__, ctx, tool(ctx, **arguments))
                return await tool(ctx, **arguments)
            finally:
                self.in_flight -= 1

        return call

    @asynccontextmanager
    async def lifespan(self, _server: MCPServer[Any]) -> AsyncIterator[ServerState]:
        self._users += 1
        try:
            yield self
        finally:
            self._users -= 1
            if self._users == 0 and self._client is not None:
                with anyio.CancelScope(shield=True):  # close the pool even when shutdown cancels us
                    await self._client.aclose()


def build_server(config: Config, *, transport: httpx2.AsyncBaseTransport | None = None) -> MCPServer[ServerState]:
    """A server with its own settings; nothing is registered at import, so tests can build many."""
    state = ServerState(config, transport)

    async def upsert_log_score(ctx: Context, **arguments: Any) -> Score:
        write = validated(LogScoreWrite, arguments)
        key = caller_key(ctx)
        body = await tool_answer(state.checked_body(write, key))
        return score_from(await tool_answer(state.client.upsert_log_score(write.log_id, body, api_key=key)))

    async def update_score(ctx: Context, **arguments: Any) -> Score:
        update = validated(ScoreUpdate, arguments)
        key = caller_key(ctx)
        body = await tool_answer(state.checked_body(update, key))
        return score_from(await tool_answer(state.client.update_score(update.score_id, body, api_key=key)))

    async def upsert_log_scores(ctx: Context, **arguments: Any) -> BatchResult | CallToolResult:
        batch = validated(BatchWrite, arguments)
        key = caller_key(ctx)
        result = await write_batch(
            state.client,
            batch.scores,
            check=lambda item: state.checked_body(item, key),
            api_key=key,
            deadline=min(batch.deadline_seconds or config.batch_deadline, MAX_DEADLINE),
            max_in_flight=config.max_concurrency,
            progress=ctx.report_progress,
        )
        if not is_error(result):
            return result
        # Nothing written and nothing to retry: an error, still with every item's reason.
        return CallToolResult(
            content=[TextContent(type="text", text=result.model_dump_json())],
            structured_content=result.model_dump(mode="json"),
            is_error=True,
        )

    tools = [
        model_tool(
            state.tracked(upsert_log_score),
            LogScoreWrite,
            Score,
            title="Score a log",
            description=(
                "Create or update the score a Respan log has for one evaluator (POST /api/logs/{log_id}/scores/). "
                "One score is kept per log, evaluator and API key: calling again with the same log_id and "
                "evaluator updates it, so retrying is safe. Give evaluator_id or evaluator_slug, and exactly one "
                f"value field matching the evaluator's score_value_type ({PAIRING_TABLE_TEXT}). "
                "Call list_evaluators first if you do not know the evaluator's type; the value is checked "
                "against the evaluator's type, range and choices before anything is sent. "
                "Returns the stored score; its id is what update_score takes."
            ),
        ),
        model_tool(
            state.tracked(update_score),
            ScoreUpdate,
            Score,
            title="Change a score",
            description=(
                "Change the value of an existing score by its id (PATCH /api/scores/{score_id}/). Only the value "
                f"can change: send exactly one value field, the one its evaluator takes ({PAIRING_TABLE_TEXT}). "
                "Without score_value_type the score's evaluator is read and the value checked against it. "
                "Returns the updated score."
            ),
        ),
        model_tool(
            state.tracked(upsert_log_scores),
            BatchWrite,
            BatchResult,
            title="Score many logs",
            description=(
                "Write up to 500 scores in one call, each item with the same fields as upsert_log_score. Every "
                "item is checked first (invalid ones are reported by index and never sent); valid ones are "
                "written concurrently, slowing down together when Respan rate-limits. The call returns by "
                "deadline_seconds with one result per item (written, invalid, failed or deferred); send the "
                "deferred items again after retry_after_seconds (safe: writes are idempotent upserts)."
            ),
        ),
        *read_tools(state),
    ]
    server = MCPServer(
        "respan",
        title="Respan scores",
        instructions=INSTRUCTIONS,
        version=package_version(),
        log_level=config.log_level,  # type: ignore[arg-type]
        lifespan=state.lifespan,
        tools=tools,
    )
    server.prompt(name="self_grade", title="Grade your own run")(prompts.self_grade)
    server.state = state  # type: ignore[attr-defined]  # the transports drain and health-check through it

    async def complete(ctx: ServerRequestContext[Any], params: CompleteRequestParams) -> CompleteResult:
        """Evaluator slugs for self_grade's `evaluators`, found with the caller's key or a key we may lend."""
        ref, argument = params.ref, params.argument
        nothing = CompleteResult(completion=Completion(values=[]))
        if not (isinstance(ref, PromptReference) and ref.name == "self_grade" and argument.name == "evaluators"):
            return nothing
        headers = getattr(ctx.request, "headers", None)
        try:
            key = key_for(headers, state) if headers else None
        except ToolError:  # this caller may not use the server's key: no lookup on its behalf
            return nothing
        if not (key or config.api_key):
            return nothing
        current = argument.value.rpartition(",")[2].strip()
        try:
            page = await state.evaluators.search(current or None, 1, 100, key)
        except RespanError:
            return nothing
        slugs = [e.evaluator_slug for e in page.evaluators if e.evaluator_slug]
        return CompleteResult(completion=Completion(values=prompts.complete_slugs(argument.value, slugs)))

    # Registered on the low-level server: unlike `@server.completion()`, its handler sees the request headers.
    server._lowlevel_server.add_request_handler("completion/complete", CompleteRequestParams, complete)

    return server

