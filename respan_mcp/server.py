"""The MCP server: tools built from the score models, forwarded to the Respan API.

Tool schemas are generated from `models.py` (flattened for portability) rather
than from function signatures, so the models stay the one source of truth.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx2
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, SkipValidation, ValidationError, create_model

from respan_mcp.client import RespanClient, RespanError, package_version
from respan_mcp.config import Config
from respan_mcp.models import (
    PAIRING_TABLE_TEXT,
    LogScoreWrite,
    Score,
    ScoreUpdate,
    ScoreValueError,
    describe_invalid,
    flat_schema,
)

INSTRUCTIONS = f"""\
Write evaluation scores into Respan. upsert_log_score creates or updates the score a log has for
one evaluator (calling it again for the same log and evaluator updates that score); update_score
changes a score by its id. Send exactly one value field, the one the evaluator's score_value_type
takes: {PAIRING_TABLE_TEXT}."""

ModelT = TypeVar("ModelT", bound=BaseModel)

WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True)


class ServerState:
    """Owns the one Respan client for the process.

    SSE enters the server lifespan once per connection, streamable HTTP once per
    process and stdio once: sharing the client across entries keeps one
    connection pool whatever the transport.
    """

    def __init__(self, config: Config, transport: httpx2.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self._transport = transport
        self._client: RespanClient | None = None
        self._users = 0

    @property
    def client(self) -> RespanClient:
        if self._client is None or self._client.is_closed:
            self._client = RespanClient(self.config, transport=self._transport)
        return self._client

    async def checked_body(self, write: LogScoreWrite | ScoreUpdate, api_key: str | None) -> dict[str, Any]:
        """The request body for a write, after every check that can be made before sending.

        Single and batch writes both come through here, so a rule added here holds for both.
        Raises ScoreValueError with a message that says what to send instead.
        """
        return write.request_body()

    @asynccontextmanager
    async def lifespan(self, _server: MCPServer[Any]) -> AsyncIterator[ServerState]:
        self._users += 1
        try:
            yield self
        finally:
            self._users -= 1
            if self._users == 0 and self._client is not None:
                await self._client.aclose()


def caller_key(ctx: Context) -> str | None:
    """The caller's own Respan key, from `Authorization: Bearer` on HTTP transports; None on stdio."""
    headers = ctx.headers
    if not headers:
        return None
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def build_server(config: Config, *, transport: httpx2.AsyncBaseTransport | None = None) -> MCPServer[ServerState]:
    """A server with its own settings; nothing is registered at import, so tests can build many."""
    state = ServerState(config, transport)

    async def upsert_log_score(ctx: Context, **arguments: Any) -> Score:
        write = _validated(LogScoreWrite, arguments)
        key = caller_key(ctx)
        body = await _checked(state.checked_body(write, key))
        return await _forward(state.client.upsert_log_score(write.log_id, body, api_key=key))

    async def update_score(ctx: Context, **arguments: Any) -> Score:
        update = _validated(ScoreUpdate, arguments)
        key = caller_key(ctx)
        body = await _checked(state.checked_body(update, key))
        return await _forward(state.client.update_score(update.score_id, body, api_key=key))

    tools = [
        _tool(
            upsert_log_score,
            LogScoreWrite,
            title="Score a log",
            description=(
                "Create or update the score a Respan log has for one evaluator (POST /api/logs/{log_id}/scores/). "
                "One score is kept per log, evaluator and API key: calling again with the same log_id and "
                "evaluator updates it, so retrying is safe. Give evaluator_id or evaluator_slug, and exactly one "
                f"value field matching the evaluator's score_value_type ({PAIRING_TABLE_TEXT}). "
                "Returns the stored score; its id is what update_score takes."
            ),
        ),
        _tool(
            update_score,
            ScoreUpdate,
            title="Change a score",
            description=(
                "Change the value of an existing score by its id (PATCH /api/scores/{score_id}/). Only the value "
                f"can change: send exactly one value field, the one its evaluator takes ({PAIRING_TABLE_TEXT}). "
                "Returns the updated score."
            ),
        ),
    ]
    return MCPServer(
        "respan",
        title="Respan scores",
        instructions=INSTRUCTIONS,
        version=package_version(),
        log_level=config.log_level,  # type: ignore[arg-type]
        lifespan=state.lifespan,
        tools=tools,
    )


def _validated(model: type[ModelT], arguments: dict[str, Any]) -> ModelT:
    try:
        return model.model_validate(arguments)
    except ValidationError as exc:
        raise ToolError(f"{describe_invalid(exc, model)}. Nothing was sent.") from None


async def _checked(body: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    try:
        return await body
    except ScoreValueError as exc:
        raise ToolError(f"{exc}. Nothing was sent.") from None


async def _forward(call: Awaitable[Any]) -> Score:
    try:
        answer = await call
    except RespanError as exc:
        raise ToolError(str(exc)) from None
    if not isinstance(answer, dict) or "id" not in answer:
        raise ToolError("The Respan API answered without a score; check RESPAN_BASE_URL points at the Respan API.")
    return Score.model_validate(answer)


class _PassThrough(ArgModelBase):
    """Hands the tool the arguments as sent (unknown ones too), unvalidated.

    The tool validates them against the real model itself, so a wrong argument is
    answered in plain words rather than as a raw pydantic report.
    """

    model_config = ConfigDict(extra="allow")

    def model_dump_one_level(self) -> dict[str, Any]:
        given = {name: getattr(self, name) for name in self.model_fields_set}
        return given | (self.model_extra or {})


def _pass_through(model: type[BaseModel]) -> type[ArgModelBase]:
    # Same annotations (so the SDK still decodes arrays sent as JSON text), no validation.
    fields: Any = {name: (SkipValidation[field.annotation], None) for name, field in model.model_fields.items()}
    return create_model(model.__name__, __base__=_PassThrough, **fields)


def _tool(fn: Callable[..., Awaitable[Any]], model: type[BaseModel], *, title: str, description: str) -> Tool:
    """A tool whose arguments are `model`'s fields and whose output is a `Score`."""
    arg_model = _pass_through(model)
    return Tool(
        fn=fn,
        name=fn.__name__,
        title=title,
        description=description,
        parameters=flat_schema(model),
        fn_metadata=FuncMetadata(arg_model=arg_model, output_schema=flat_schema(Score), output_model=Score),
        is_async=True,
        context_kwarg="ctx",
        annotations=WRITE,
    )


def serve(config: Config, *, transport: str = "stdio", host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the server until the host closes stdio or the HTTP server is stopped."""
    server = build_server(config)
    if transport == "stdio":
        server.run("stdio")
        return

    import anyio
    import uvicorn

    if transport == "sse":
        app = server.sse_app(host=host)
    else:
        # Stateless: any replica behind a load balancer can answer any request.
        app = server.streamable_http_app(stateless_http=True, host=host)
    uvicorn_config = uvicorn.Config(app, host=host, port=port, log_level=config.log_level.lower())
    anyio.run(uvicorn.Server(uvicorn_config).serve)
