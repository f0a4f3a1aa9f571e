"""Logs for running the server as a service: `--log-format json` gives one JSON line per tool call.

A call's line names the tool, its outcome, Respan's last HTTP status, the duration and a
request id (a proxy's `X-Request-ID` when it sent one, so the two logs join). It never
holds the key, the arguments or the answer, so no score value reaches a log pipeline.
In text mode none of this runs: the tool-call path stays as cheap as without logging.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from collections.abc import Awaitable
from contextvars import ContextVar
from typing import Any

import httpx2
from mcp.types import CallToolResult

calls_logger = logging.getLogger("respan_mcp.calls")

# The statuses Respan answered during the current call; a list shared with the call's child tasks.
_statuses: ContextVar[list[int] | None] = ContextVar("respan_statuses", default=None)


class StatusRecorder(httpx2.AsyncBaseTransport):
    """Wraps the client's transport to note each Respan answer's status for the call's log line."""

    def __init__(self, inner: httpx2.AsyncBaseTransport | None) -> None:
        self._inner = inner or httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        statuses = _statuses.get()
        if statuses is not None:
            statuses.append(response.status_code)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class CallLog:
    """Times a tool call and logs its line."""

    async def record(self, tool: str, ctx: Any, call: Awaitable[Any]) -> Any:
        statuses: list[int] = []
        token = _statuses.set(statuses)
        started = time.perf_counter()
        error: BaseException | None = None
        result: Any = None
        try:
            result = await call
            return result
        except BaseException as exc:
            error = exc
            raise
        finally:
            _statuses.reset(token)
            fields: dict[str, Any] = {
                "event": "tool_call",
                "tool": tool,
                "outcome": "error" if error is not None or _is_error(result) else "ok",
                "respan_status": statuses[-1] if statuses else None,
                "respan_requests": len(statuses),
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                "request_id": _request_id(ctx),
            }
            if error is not None:
                # The class of what went wrong (a tool error keeps its cause as context), never its text:
                # a message may quote the value that was refused.
                fields["error"] = type(error.__context__ or error).__name__
            calls_logger.info("tool call", extra={"fields": fields})


def _is_error(result: Any) -> bool:
    return isinstance(result, CallToolResult) and bool(result.is_error)


def _request_id(ctx: Any) -> str:
    headers = getattr(ctx, "headers", None) or {}
    given = headers.get("x-request-id") or ""
    if 0 < len(given) <= 128 and given.isascii() and given.isprintable():
        return given
    return uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    """Every stderr line as one JSON object, so a log pipeline needs no parser of ours."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if fields:
            line |= fields
        else:
            line["message"] = record.getMessage()
            if record.exc_info:
                line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(log_format: str, level: str) -> None:
    """In json mode, every log line on stderr is JSON, and tool calls are logged whatever the level."""
    if log_format != "json":
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    calls_logger.setLevel(logging.INFO)


def notice(log_format: str, message: str) -> None:
    """A start-up notice for whoever runs the server, in the format its logs are read in."""
    if log_format == "json":
        logging.getLogger("respan_mcp").warning(message)
    else:
        print(f"respan-mcp: {message}", file=sys.stderr, flush=True)
