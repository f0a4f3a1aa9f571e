"""Logs for running the server as a service: `--log-format json` gives one JSON line per tool call.

A call's line names the tool, its outcome, Respan's last HTTP status, the duration and a
request id (a proxy's `X-Request-ID` when it sent one, so the two logs join). It never
holds the key, the arguments or the answer, so no score value reaches a log pipeline.
In text mode none of this runs: the tool-call path stays as cheap as without logging.
Either way a log line is one line: JSON escapes what it quotes, and `TextFormatter` does the same
for text, so no text an API or a caller chose can forge a line of its own.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

import httpx2

from respan_mcp.net import LINE_BREAKING

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


class CallLine:
    """One tool call's log line, filled in by the call path while the call runs."""

    def __init__(self, tool: str, headers: Mapping[str, str] | None) -> None:
        self.fields: dict[str, Any] = {"event": "tool_call", "tool": tool, "request_id": _request_id(headers)}
        self.error: str | None = None  # the class of what went wrong, never its text (it may quote a value)
        self.caller: dict[str, str] = {}  # who, when signed in through the identity provider (sub, email)

    def failed(self, error: BaseException) -> None:
        self.error = type(error).__name__


class CallLog:
    """Times each tool call and logs its line."""

    @asynccontextmanager
    async def record(self, tool: str, headers: Mapping[str, str] | None) -> AsyncIterator[CallLine]:
        line = CallLine(tool, headers)
        statuses: list[int] = []
        token = _statuses.set(statuses)
        started = time.perf_counter()
        try:
            yield line
        except BaseException as exc:
            line.failed(exc)
            raise
        finally:
            _statuses.reset(token)
            fields = line.fields | {
                "outcome": "error" if line.error is not None else "ok",
                "respan_status": statuses[-1] if statuses else None,
                "respan_requests": len(statuses),
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            }
            if line.error is not None:
                fields["error"] = line.error
            if line.caller:
                fields["caller"] = line.caller
            calls_logger.info("tool call", extra={"fields": fields})


def _request_id(headers: Mapping[str, str] | None) -> str:
    given = (headers or {}).get("x-request-id") or ""
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


_CONTROL = re.compile(LINE_BREAKING)


def _escaped(text: str) -> str:
    """`text` on one line: each control character written as its escape (a line break as \\n)."""
    return _CONTROL.sub(lambda found: found.group().encode("unicode_escape").decode("ascii"), text)


class TextFormatter(logging.Formatter):
    """Text-format lines where nothing quoted (an API's words, an argument) can start a line of its own:
    a message that holds `\nCRITICAL ...` stays on its line, escaped. A traceback keeps its lines, each
    indented and escaped, so none of them can pass for a log line either."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        return _escaped(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


def _indented(text: str) -> str:
    return "\n".join("    " + _escaped(line) for line in text.split("\n"))


def configure(log_format: str, level: str) -> None:
    """Logs go to stderr (stdout is the stdio channel) at `level`.

    In json mode every line is JSON, and tool calls are logged whatever the level.
    """
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
        calls_logger.setLevel(logging.INFO)
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)


def notice(log_format: str, message: str) -> None:
    """A start-up notice for whoever runs the server, in the format its logs are read in."""
    if log_format == "json":
        logging.getLogger("respan_mcp").warning(message)
    else:
        print(f"respan-mcp: {message}", file=sys.stderr, flush=True)
