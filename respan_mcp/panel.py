"""The log-scores panel: an MCP App (extension `io.modelcontextprotocol/ui`) that draws scores.

A host that renders MCP Apps shows `ui/log_scores.html` in a sandboxed iframe for a tool whose
`_meta.ui.resourceUri` is `PANEL_URI`, and posts it the tool's result; the panel draws a
`ScorePage` (list_log_scores), a single `Score` (get_score, the writes) or a `BatchResult`
(upsert_log_scores) from its structuredContent. Hosts without MCP Apps get the same result as
text and structuredContent, so the panel is an addition, never the only way to read a result.

The HTML is a file rather than a Python string so that it can be opened, linted and diffed as
HTML; it ships inside the package and is read once.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

PANEL_URI = "ui://respan/log-scores.html"
"""The `ui://` resource a tool names in `_meta.ui.resourceUri`."""

PANEL_MIME = "text/html;profile=mcp-app"
"""The MIME type hosts require of an MCP App resource (the SDK's `mcp.server.apps.APP_MIME_TYPE`)."""


@cache
def panel_html() -> str:
    """The panel's HTML document, read from the package once."""
    return files("respan_mcp").joinpath("ui", "log_scores.html").read_text(encoding="utf-8")
