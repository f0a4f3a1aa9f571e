"""What a host writes on stdin, line by line: which lines the SDK will serve, and what the others get.

The SDK's stdio reader drops a line it cannot parse or validate without a word (so the
request is never answered, and the end of input waits for it), and a line nested past
Python's recursion limit or longer than a read buffer ends the process. Checking each line
here first gives every bad line a JSON-RPC error answer of its own: -32700 when it is not
JSON that can be read (too large, too deep, not UTF-8, not JSON), -32600 when it is JSON but
not a request the SDK would serve. The answer carries the request's id when a cheap look at
either end of the line finds it; else null, as JSON-RPC says.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from mcp.types import (
    INVALID_REQUEST,
    PARSE_ERROR,
    RequestId,
)

MAX_LINE_BYTES = 16 * 2**20  # a full batch fits many times over; a runaway writer does not exhaust memory
MAX_DEPTH = 128  # levels of arrays and objects in a line; the SDK's parser drops a line, silently, near 200

ID_WINDOW = 4096  # characters at each end of a bad line searched for its id
_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_MEMBER = rf"{_STRING}\s*:\s*(?:{_STRING}|[-+.\w]+)"  # a member whose value is a string, number or literal
_ID = rf"(-?(?:0|[1-9]\d*)|{_STRING})"
# A top-level id: before the first member holding an array or object, or after the last one.
_ID_FIRST = re.compile(rf'\s*\{{\s*(?:{_MEMBER}\s*,\s*)*"id"\s*:\s*{_ID}\s*[,}}]')
_ID_LAST = re.compile(rf'[{{,]\s*"id"\s*:\s*{_ID}\s*(?:,\s*{_MEMBER}\s*)*\}}\s*$')
# A string, or an unterminated one to the end of the line. It never fails once it has started, so
# no start is tried twice and stripping strings is one pass over the line whatever it holds.
_QUOTED_OR_OPEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_BRACKETS = re.compile(r"[\[{]+|[\]}]+")
ID_RULE = "id must be a string or an integer"


@dataclass(frozen=True)
class TooLarge:
    """A line past MAX_LINE_BYTES: only its two ends are kept, to look for its id."""

    head: bytes
    tail: bytes


@dataclass(frozen=True)
class Rejected:
    """The error answer a line gets instead of being passed to the SDK."""

    code: int
    message: str
    id: RequestId | None


def too_deep(text: str) -> Rejected:
    return Rejected(PARSE_ERROR, f"nesting too deep: a request may nest arrays and objects at most {MAX_DEPTH} "
                    "levels deep; send a flatter value", find_id(text))


def diagnose(text: str) -> Rejected | None:
    """What is wrong with a line the SDK would drop, in words the sender can act on."""
    try:
        message = json.loads(text)
    except RecursionError:
        return too_deep(text)
    except json.JSONDecodeError as exc:
        where = f"{exc.msg.removesuffix(' at')} at character {exc.pos}"  # "Unterminated string starting at"
        return Rejected(PARSE_ERROR, f"parse error: the line is not valid JSON ({where}); "
                        "send one JSON-RPC message per line", find_id(text))
    if isinstance(message, dict) and "method" not in message and ("result" in message or "error" in message):
        return None
    request_id = message.get("id") if isinstance(message, dict) and _is_id(message.get("id")) else None
    return Rejected(INVALID_REQUEST, f"invalid request: {'; '.join(_problems(message))}", request_id)


def _problems(message: Any) -> list[str]:
    if isinstance(message, list):
        return ["a batch (a JSON array) is not accepted; send one JSON-RPC message per line"]
    if not isinstance(message, dict):
        return ['a message is a JSON object: {"jsonrpc": "2.0", "id": 1, "method": "...", "params": {...}}']
    problems = []
    if message.get("jsonrpc") != "2.0":
        problems.append('jsonrpc must be "2.0"' + ("" if "jsonrpc" in message else " (it is missing)"))
    if not isinstance(message.get("method"), str):
        problems.append("method must be a string" if "method" in message else "method is missing")
    if "id" in message and not _is_id(message["id"]):
        problems.append(ID_RULE)
    if message.get("params") is not None and not isinstance(message["params"], dict):
        problems.append("params must be an object")
    return problems or ["not a JSON-RPC 2.0 request or notification"]


def as_object(text: str) -> dict[str, Any]:
    try:
        message = json.loads(text)
    except ValueError:
        return {}
    return message if isinstance(message, dict) else {}


def _is_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def nests_deeper(text: str, limit: int) -> bool:
    """Whether arrays and objects nest past `limit` (outside strings), for a line with more brackets than that.

    Linear in the line: strings are stripped in one pass (an unterminated one runs to the end, as
    the parser would read it), then the runs of brackets left are summed once.
    """
    depth = 0
    for run in _BRACKETS.findall(_QUOTED_OR_OPEN.sub("", text)):
        depth += len(run) if run[0] in "[{" else -len(run)
        if depth > limit:
            return True
    return False


def find_id(text: str) -> RequestId | None:
    """The id of a line that cannot be parsed, if it stands at either end of it (else None)."""
    match = _ID_FIRST.match(text, 0, ID_WINDOW) or _ID_LAST.search(text, max(0, len(text) - ID_WINDOW))
    if match is None:
        return None
    try:
        found = json.loads(match.group(1))
    except ValueError:
        return None
    return found if _is_id(found) else None
