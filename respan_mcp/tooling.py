"""How a pydantic model becomes an MCP tool with a flat, portable schema.

The SDK would derive schemas from function signatures (nullable `anyOf`, `$ref`);
here the argument and result models are the source, published through
`models.flat_schema`, and arguments reach the tool unvalidated so it can answer a
wrong one in plain words.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, get_args

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, SkipValidation, ValidationError, create_model

from respan_mcp.errors import RespanError
from respan_mcp.models import Score, ScoreValueError, describe_invalid, flat_schema

ModelT = TypeVar("ModelT", bound=BaseModel)

WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True)
READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True)


def validated(model: type[ModelT], arguments: dict[str, Any]) -> ModelT:
    """The arguments as `model`, or a tool error that says what was wrong."""
    try:
        return model.model_validate(arguments)
    except ValidationError as exc:
        raise ToolError(f"{describe_invalid(exc, model)}. Nothing was sent.") from None


async def tool_answer(call: Awaitable[Any]) -> Any:
    """Await a check or an API call; its failure becomes a tool error the agent can act on."""
    try:
        return await call
    except ScoreValueError as exc:
        raise ToolError(f"{exc}. Nothing was sent.") from None
    except RespanError as exc:
        raise ToolError(str(exc)) from None


def score_from(answer: Any) -> Score:
    """The API's answer as a Score, or a tool error when it is not one (a wrong base URL, say)."""
    if not isinstance(answer, dict) or "id" not in answer:
        raise ToolError("The Respan API answered without a score; check RESPAN_BASE_URL points at the Respan API.")
    return Score.model_validate(answer)


SEND_YOUR_KEY = "add the header 'Authorization: Bearer <your Respan API key>' to your MCP client's configuration"


def caller_key(ctx: Context) -> str | None:
    """The key this call is made with: the caller's own, or None for the server's.

    On stdio (no headers) the server's key is the host's own. Over HTTP,
    `Authorization: Bearer <key>` is the caller's key for this call only; a caller
    without one gets the server's key only where the server may lend it
    (`ServerState.server_key_refusal`), and otherwise a tool error before anything is sent.
    """
    headers = ctx.headers
    if not headers:
        return None
    return key_for(headers, ctx.request_context.lifespan_context)


def key_for(headers: Mapping[str, str], state: Any) -> str | None:
    """`caller_key` for handlers that see the request headers but no tool Context."""
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    refusal = state.server_key_refusal(headers)
    if refusal:
        raise ToolError(f"{refusal}: {SEND_YOUR_KEY}. Nothing was sent to Respan.")
    return None


class _PassThrough(ArgModelBase):
    """Hands the tool the arguments as sent (unknown ones too), unvalidated."""

    model_config = ConfigDict(extra="allow")

    def model_dump_one_level(self) -> dict[str, Any]:
        given = {name: getattr(self, name) for name in self.model_fields_set}
        return given | (self.model_extra or {})


def _pass_through(model: type[BaseModel]) -> type[ArgModelBase]:
    # Same annotations, so the SDK still decodes arrays and objects sent as JSON text; no validation.
    # A field that takes text (json_value) is declared `str`, which the SDK leaves as sent: its JSON
    # text is the value itself ("null" and "true" are valid json_value scores, not absent ones).
    fields: Any = {
        name: (SkipValidation[str if _takes_text(field.annotation) else field.annotation], None)
        for name, field in model.model_fields.items()
    }
    return create_model(model.__name__, __base__=_PassThrough, **fields)


def _takes_text(annotation: Any) -> bool:
    return annotation is str or str in get_args(annotation)


def model_tool(
    fn: Callable[..., Awaitable[Any]],
    arguments: type[BaseModel],
    output: type[BaseModel],
    *,
    title: str,
    description: str,
    annotations: ToolAnnotations = WRITE,
) -> Tool:
    """A tool whose arguments are `arguments`' fields and whose result is an `output`, both published flat.

    `fn(ctx, **arguments)` validates the arguments itself (see `validated`).
    """
    return Tool(
        fn=fn,
        name=fn.__name__,
        title=title,
        description=description,
        parameters=flat_schema(arguments),
        fn_metadata=FuncMetadata(
            arg_model=_pass_through(arguments), output_schema=flat_schema(output), output_model=output
        ),
        is_async=True,
        context_kwarg="ctx",
        annotations=annotations,
    )
