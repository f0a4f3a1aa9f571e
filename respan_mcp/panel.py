"""The log-scores panel: an MCP App (extension `io.modelcontextprotocol/ui`) that draws logs and scores.

A host that renders MCP Apps shows `ui/log_scores.html` in a sandboxed iframe for a tool whose
`_meta.ui.resourceUri` is `PANEL_URI`, and posts it the tool's result; the panel draws a
`ScorePage` (list_log_scores), a single `Score` (get_score, the writes), a `BatchResult`
(upsert_log_scores) or a `LogDetail` (get_log: its content as text, with the scores on it)
from its structuredContent. Hosts without MCP Apps get the same result as
text and structuredContent, so the panel is an addition, never the only way to read a result.

The HTML is a file rather than a Python string so that it can be opened, linted and diffed as
HTML; it ships inside the package and is read once. This module also holds the panel's wiring:
which tools it draws, the resource and its handlers, and whether a client is told of it.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

from mcp import types
from mcp.server.apps import client_supports_apps
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError

PANEL_URI = "ui://respan/log-scores.html"
"""The `ui://` resource a tool names in `_meta.ui.resourceUri`."""

PANEL_MIME = "text/html;profile=mcp-app"
"""The MIME type hosts require of an MCP App resource (the SDK's `mcp.server.apps.APP_MIME_TYPE`)."""


@cache
def panel_html() -> str:
    """The panel's HTML document, read from the package once."""
    return files("respan_mcp").joinpath("ui", "log_scores.html").read_text(encoding="utf-8")


# The tools whose results the panel draws: a page of scores, one score, a batch's report, a log.
PANEL_TOOLS = frozenset(
    {"list_log_scores", "get_score", "upsert_log_score", "update_score", "upsert_log_scores", "get_log"}
)
PANEL_RESOURCE = types.Resource(
    uri=PANEL_URI,
    name="log-scores",
    title="Respan scores",
    description=(
        "A panel that draws a log and its scores: the log's input and output as text, with where they "
        "were cut; scores within the evaluator's range, pass/fail, choices."
    ),
    mime_type=PANEL_MIME,
)


def with_panel(listing: types.Tool) -> types.Tool:
    """A tool as hosts that render MCP Apps see it: tied to the panel by `_meta.ui.resourceUri`."""
    if listing.name not in PANEL_TOOLS:
        return listing
    return listing.model_copy(update={"meta": {"ui": {"resourceUri": PANEL_URI}}})


def shows_panel(ctx: ServerRequestContext[Any, Any]) -> bool:
    """Tie tools to the panel unless the client said what it supports and MCP Apps was not in it.

    A stateless HTTP request may carry no client capabilities at all; the `_meta` is then
    included, as hosts ignore what they do not render. Results are the same for every host.
    """
    return ctx.session.client_capabilities is None or client_supports_apps(ctx)


async def list_resources(
    _ctx: ServerRequestContext[Any, Any], _params: types.PaginatedRequestParams | None
) -> types.ListResourcesResult:
    return types.ListResourcesResult(resources=[PANEL_RESOURCE])


async def list_resource_templates(
    _ctx: ServerRequestContext[Any, Any], _params: types.PaginatedRequestParams | None
) -> types.ListResourceTemplatesResult:
    """None: the panel is one fixed resource. Answered, not "method not found", because a server that lists
    resources is asked for its templates too (the Inspector's Resources view asks)."""
    return types.ListResourceTemplatesResult(resource_templates=[])


async def read_resource(
    _ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
) -> types.ReadResourceResult:
    if str(params.uri) != PANEL_URI:
        raise MCPError(types.INVALID_PARAMS, f"Unknown resource '{params.uri}'; this server has {PANEL_URI}.")
    content = types.TextResourceContents(
        uri=PANEL_URI, mime_type=PANEL_MIME, text=panel_html(), meta={"ui": {"prefersBorder": True}}
    )
    return types.ReadResourceResult(contents=[content])
