"""The line checks are linear in the line: a hostile line cannot hold the event loop.

Stripping strings with a pattern that must find the closing quote rescans to the end of the
line from every escaped quote of an unterminated string: 32 kB took 2 s, a megabyte would take
most of an hour, with the event loop (answers, signals) stuck behind it.
"""

from __future__ import annotations

import signal
import time

import pytest

from respan_mcp.config import SHUTDOWN_GRACE
from respan_mcp.stdio_lines import MAX_DEPTH, Rejected
from respan_mcp.stdio_wire import check
from tests.conftest import API_KEY, server_env
from tests.e2e.test_shutdown import StdioServer
from tests.fake_api import FakeRespan, RunningFakeRespan

PARSE_ERROR = -32700
HEAD = b'{"jsonrpc":"2.0","id":7,"method":"ping","params":{"v":'


def hostile(size: int, brackets: int = 200) -> bytes:
    """Past the bracket count that makes the check look closer; then a string that never ends, full of escaped quotes."""
    line = HEAD + b"[" * brackets + b'"' + b'\\"[' * (size // 3)
    return line[:size]


@pytest.mark.parametrize("brackets", [MAX_DEPTH + 72, 0], ids=["deep-before-the-string", "flat"])
def test_a_megabyte_of_escaped_quotes_in_an_open_string_is_answered_in_well_under_a_second(brackets: int) -> None:
    line = hostile(2**20, brackets)
    assert line.count(b"[") > MAX_DEPTH and line.count(b'\\"') > 300_000
    started = time.process_time()
    answer = check(line)
    spent = time.process_time() - started  # CPU, so other work on the machine does not count
    assert isinstance(answer, Rejected) and (answer.code, answer.id) == (PARSE_ERROR, 7), answer
    assert spent < 1.0, f"{spent:.2f} s of CPU for one line"


def test_brackets_inside_an_open_string_are_text_not_nesting() -> None:
    answer = check(HEAD + b'"' + b"[" * 1000)
    assert isinstance(answer, Rejected), answer
    assert "unterminated string starting at character 54" in answer.message.lower(), answer


@pytest.mark.slow  # starts the console script
def test_sigterm_acts_at_once_after_a_hostile_megabyte_line() -> None:
    fake = FakeRespan(api_keys=(API_KEY,))
    with RunningFakeRespan(fake) as api:
        server = StdioServer(server_env(api.url))
        try:
            assert server.process.stdin is not None
            server.process.stdin.write(hostile(2**20) + b"\n")
            server.process.stdin.flush()
            answer = server.answer(7, timeout=30)  # a failure bound: the old check took most of an hour
            assert answer["error"]["code"] == PARSE_ERROR, answer
            server.process.send_signal(signal.SIGTERM)
            code, stderr = server.finish(timeout=SHUTDOWN_GRACE / 2)  # nothing is owed: it need not wait
        finally:
            server.kill()
    assert code == 0 and "Traceback" not in stderr, stderr
