"""How a tool call that failed is answered: the one wording of every failure, for the agent.

Every failure a call can meet is a `RespanError` (worded by its class, which also says whether
anything was sent), a pydantic `ValidationError` (the arguments, in plain words; nothing was
sent), or a fault of ours, answered with a sentence that says whether anything may have reached
Respan. Only a failed call runs this; a call that succeeds is answered by `server.success`.
"""

from __future__ import annotations

import logging
from typing import Any

from mcp import types
from pydantic import ValidationError

from respan_mcp.errors import NOTHING_SENT, RespanError
from respan_mcp.schema import describe_invalid
from respan_mcp.tools import Tool

logger = logging.getLogger(__name__)


def failure(tool: Tool[Any], error: Exception) -> types.CallToolResult:
    """The one wording of every way a call can fail: what was wrong, and whether anything was sent."""
    if isinstance(error, ValidationError):
        return text_error(f"{describe_invalid(error, tool.arguments)}. {NOTHING_SENT}")
    if isinstance(error, RespanError):
        return text_error(error.for_agent())
    # A fault of ours: the agent still gets a sentence, never the SDK's bare "Error executing tool".
    logger.error("%s failed unexpectedly (%s)", tool.name, type(error).__name__, exc_info=logger.isEnabledFor(logging.DEBUG))
    return text_error(
        f"{tool.name} failed inside respan-mcp ({type(error).__name__}); whether anything reached Respan is "
        f"unknown. Read back with list_log_scores or get_score before sending it again."
    )


def text_error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)
