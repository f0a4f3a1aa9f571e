"""What a tool is, and what every tool function is handed: `Tool` and `Call`.

A tool is an async function, its argument model, its result model, a title, a description and
annotations, declared beside the function in `writes.py` (the score writes) or `reads.py` (the
reads). The server's one call path (`server.call_tool`) parses the arguments, resolves the
`Caller` once and hands the function a `Call`; everything below works from those values.
Adding a tool is a model in `arguments.py`, a function with its `Tool(...)`, and its name in
the module's `TOOLS`. `trace_id` reads the trace a request belongs to, for the tools (`Call.trace_id`)
and the prompts alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Generic, TypeVar

import anyio
from mcp import types
from pydantic import BaseModel

from respan_mcp.client import Caller, RespanClient
from respan_mcp.config import Config
from respan_mcp.evaluator_cache import EvaluatorCache
from respan_mcp.schema import flat_schema, structured_fields

ArgsT = TypeVar("ArgsT", bound=BaseModel)

WRITE = types.ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True)
READ = types.ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True)


@dataclass(frozen=True)
class Call:
    """What a tool function works with: one per tool call, every value in it resolved once."""

    config: Config
    client: RespanClient
    evaluators: EvaluatorCache
    caller: Caller
    progress: Callable[[float, float | None], Awaitable[None]] | None = None
    shutting_down: anyio.Event | None = None  # set when the process must end soon (stdio SIGTERM)
    meta: Mapping[str, Any] | None = None  # the request's _meta, where its trace context travels

    @property
    def trace_id(self) -> str | None:
        """The W3C trace id the request carried in _meta.traceparent, if any; worked out only by a tool that
        asks (find_logs), so a write does not pay for it."""
        return trace_id(self.meta)


@dataclass(frozen=True)
class Tool(Generic[ArgsT]):
    """A tool as the server publishes and runs it."""

    name: str
    run: Callable[[Call, ArgsT], Awaitable[BaseModel]]
    arguments: type[ArgsT]
    result: type[BaseModel]
    title: str
    description: str
    annotations: types.ToolAnnotations = field(default_factory=lambda: WRITE)

    @cached_property
    def input_schema(self) -> dict[str, Any]:
        return flat_schema(self.arguments)

    @cached_property
    def structured(self) -> frozenset[str]:
        """Arguments that a client may send as JSON text (arrays and objects)."""
        return structured_fields(self.input_schema)

    @cached_property
    def listing(self) -> types.Tool:
        return types.Tool(
            name=self.name,
            title=self.title,
            description=self.description,
            input_schema=self.input_schema,
            output_schema=flat_schema(self.result),
            annotations=self.annotations,
        )


def trace_id(meta: Mapping[str, Any] | None) -> str | None:
    """The trace id of the request's W3C trace context (`_meta.traceparent`: version-traceid-spanid-flags), or None.

    An all-zero id is invalid by the spec, and so is anything that is not 32 lower-case hex characters.
    """
    parent = meta.get("traceparent") if meta else None
    if not isinstance(parent, str):
        return None
    parts = parent.strip().split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or parts[1] == "0" * 32:
        return None
    return parts[1] if all(char in "0123456789abcdef" for char in parts[1]) else None
