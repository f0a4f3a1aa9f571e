"""The stdio transport against what hosts and people really send: lines too deep or too large,
bytes that are not UTF-8 or not JSON, messages the SDK would drop, and stdin that is a file.

Each test drives the installed console script over raw pipes, so it sees exactly the bytes a
host would: every line it writes must be a JSON-RPC message, a bad line must get its own error
answer (with the request's id when one can be found), and the requests after it must still be
answered. End of input must end the process with 0; `communicate`'s timeout is only a failure
bound (the SDK alone waits `SHUTDOWN_GRACE` for requests it never answers).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from respan_mcp.stdio_lines import MAX_DEPTH, MAX_LINE_BYTES, Rejected, TooLarge
from respan_mcp.stdio_wire import Lines, check, write_when_ready
from tests.conftest import LOG_ID, console_script, server_env
from tests.fake_api import FakeRespan, RunningFakeRespan

EXIT_BOUND = 15.0  # seconds; a failure bound only, well under the 20 s the SDK waited for dropped requests
PARSE_ERROR, INVALID_REQUEST = -32700, -32600


def line(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode() + b"\n"


def request(id: Any, method: str, params: dict[str, Any] | None = None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        message["params"] = params
    return line(message)


OPENING = request(1, "initialize", {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"},
}) + line({"jsonrpc": "2.0", "method": "notifications/initialized"})
LIST_TOOLS = request(99, "tools/list")


def call(id: int, **arguments: Any) -> bytes:
    return request(id, "tools/call", {"name": "upsert_log_score", "arguments": {"log_id": LOG_ID, **arguments}})


def nested(depth: int, kind: str = "array") -> str:
    """JSON text `depth` levels deep."""
    return "[" * depth + "]" * depth if kind == "array" else '{"a":' * depth + "1" + "}" * depth


def run(stdin: bytes | Path, api: RunningFakeRespan, *, stdout: Path | None = None) -> list[dict[str, Any]]:
    """Everything the server wrote to stdout (a pipe, or the file `stdout`) for `stdin`, once it has exited 0."""
    return serve([console_script()], server_env(api.url), stdin, stdout)[0]


def serve(
    command: list[str], env: dict[str, str], stdin: bytes | Path, stdout: Path | None = None
) -> tuple[list[dict[str, Any]], str]:
    """The answers `command` wrote for `stdin`, and its stderr, once it has exited 0 by itself."""
    with ExitStack() as stack:
        source = stack.enter_context(stdin.open("rb")) if isinstance(stdin, Path) else subprocess.PIPE
        sink = stack.enter_context(stdout.open("wb")) if stdout is not None else subprocess.PIPE
        process = subprocess.Popen(command, env=env, stdin=source, stdout=sink, stderr=subprocess.PIPE)
        try:
            out, err = process.communicate(None if isinstance(stdin, Path) else stdin, timeout=EXIT_BOUND)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            pytest.fail(f"still running {EXIT_BOUND:g} s after the end of its input; stderr: {err.decode()[-2000:]}")
    said = err.decode()
    assert process.returncode == 0, said[-2000:]
    assert "Traceback" not in said, said[-2000:]
    if stdout is not None:
        out = stdout.read_bytes()
    answers = [json.loads(text) for text in out.splitlines()]  # only JSON lines on stdout
    for answer in answers:
        assert answer["jsonrpc"] == "2.0" and "id" in answer and ("result" in answer) != ("error" in answer), answer
    return answers, said


def by_id(answers: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    found: dict[Any, dict[str, Any]] = {}
    for answer in answers:
        assert answer["id"] is None or answer["id"] not in found, f"two answers for id {answer['id']}"
        found[answer["id"]] = answer
    return found


def assert_error(answer: dict[str, Any] | None, code: int, *words: str) -> None:
    assert answer is not None, "no answer"
    assert answer.get("error", {}).get("code") == code, answer
    message = answer["error"]["message"].lower()
    assert all(word in message for word in words), answer


def null_id_answers(answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [answer for answer in answers if answer["id"] is None]


@pytest.mark.slow  # starts the console script
def test_too_deep_lines_get_a_parse_error_and_later_requests_are_answered(api: RunningFakeRespan, fake: FakeRespan) -> None:
    deep_value = '{"name":"upsert_log_score","arguments":{"log_id":"log-1","evaluator_slug":"q","json_value":%s}}'
    lines = [
        f'{{"jsonrpc":"2.0","id":10,"method":"tools/list","params":{{"x":{nested(1000)}}}}}\n',
        f'{{"jsonrpc":"2.0","id":11,"method":"tools/list","params":{{"x":{nested(1000, "object")}}}}}\n',
        f'{{"jsonrpc":"2.0","id":12,"method":"tools/list","params":{{"x":{nested(100_000)}}}}}\n',
        # One level past the limit: the line and params are two of them.
        f'{{"jsonrpc":"2.0","id":13,"method":"tools/list","params":{{"x":{nested(MAX_DEPTH - 1)}}}}}\n',
        f'{{"jsonrpc":"2.0","id":14,"method":"tools/call","params":{deep_value % nested(500, "object")}}}\n',
        # The id after the deep part, as the TypeScript SDK orders a request's members.
        f'{{"method":"tools/list","params":{{"x":{nested(5000)}}},"jsonrpc":"2.0","id":"after"}}\n',
        f'{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"x":{nested(3000)}}}}}\n',
    ]
    # At the line's limit exactly (the line, params, arguments, then json_value's levels): the line is served,
    # and the tool refuses a json_value nested past its own bound, sending nothing.
    at_limit = f'{{"jsonrpc":"2.0","id":20,"method":"tools/call","params":{deep_value % nested(MAX_DEPTH - 3)}}}\n'
    answers = run(OPENING + "".join(lines).encode() + at_limit.encode() + LIST_TOOLS, api)

    found = by_id(answers)
    for id in (10, 11, 12, 13, 14, "after"):
        assert_error(found.get(id), PARSE_ERROR, "nesting too deep", str(MAX_DEPTH))
    [anonymous] = null_id_answers(answers)  # the notification: no id to answer with
    assert_error(anonymous, PARSE_ERROR, "nesting too deep")
    assert found[20]["result"]["isError"] and "nested too deeply" in found[20]["result"]["content"][0]["text"]
    assert fake.writes() == []
    assert found[99]["result"]["tools"]


@pytest.mark.slow
def test_a_line_over_the_size_limit_gets_a_parse_error_and_one_at_the_limit_is_served(api: RunningFakeRespan) -> None:
    ping = b'{"jsonrpc":"2.0","id":%d,"method":"ping"}'
    at_limit = (ping % 30).ljust(MAX_LINE_BYTES) + b"\n"
    over = (ping % 31).ljust(MAX_LINE_BYTES + 1) + b"\n"
    filler = "a" * MAX_LINE_BYTES
    over_id_last = line({"method": "ping", "params": {"_meta": {"filler": filler}}, "jsonrpc": "2.0", "id": 32})
    answers = run(OPENING + at_limit + over + over_id_last + LIST_TOOLS, api)

    found = by_id(answers)
    assert found[30]["result"] == {}, found[30]
    for id in (31, 32):
        assert_error(found.get(id), PARSE_ERROR, "too large", str(MAX_LINE_BYTES))
    assert found[99]["result"]["tools"]


@pytest.mark.slow  # starts the console script
def test_blank_lines_are_skipped_and_lines_not_utf8_or_not_json_get_a_parse_error(
    api: RunningFakeRespan, fake: FakeRespan
) -> None:
    not_utf8 = call(40, evaluator_slug="q", string_value="PLACEHOLDER").replace(b"PLACEHOLDER", b"ok \xff\xfe")
    lines = [
        b" \t \r\n",
        b"\n",
        not_utf8,
        b"hello\n",
        b'{"jsonrpc":"2.0","id":41,"method":"tools/list",\n',  # cut short
        b'{"method":"tools/list","params":{"cursor":tru},"jsonrpc":"2.0","id":"42"}\n',  # a typo inside
    ]
    answers = run(OPENING + b"".join(lines) + LIST_TOOLS, api)

    found = by_id(answers)
    assert_error(found.get(40), PARSE_ERROR, "utf-8")
    assert fake.writes() == []  # not a replacement character written as the score
    assert_error(found.get(41), PARSE_ERROR, "not valid json")
    [hello] = null_id_answers(answers)
    assert_error(hello, PARSE_ERROR, "not valid json")
    assert_error(found.get("42"), PARSE_ERROR, "not valid json")
    assert found[99]["result"]["tools"]
    assert len(answers) == 6  # initialize, 4 parse errors, tools/list: nothing for the blank lines


@pytest.mark.slow  # starts the console script
def test_requests_the_sdk_would_drop_get_an_invalid_request_answer_and_eof_exits(api: RunningFakeRespan) -> None:
    lines = [
        line({"id": 50, "method": "tools/list"}),
        line({"jsonrpc": "1.0", "id": 51, "method": "tools/list"}),
        line({"jsonrpc": "2.0", "id": 52, "method": "tools/list", "params": [1]}),
        line({"jsonrpc": "2.0", "id": 53, "method": 5}),
        line({"jsonrpc": "2.0", "id": 54}),
        line({"jsonrpc": "2.0", "id": True, "method": "tools/list"}),
        line({"jsonrpc": "2.0", "id": 1.5, "method": "tools/list"}),
        line({"jsonrpc": "2.0", "id": None, "method": "tools/list"}),
        line([{"jsonrpc": "2.0", "id": 55, "method": "tools/list"}]),  # type: ignore[arg-type]
        line({"jsonrpc": "2.0", "id": 56, "result": 5}),  # a malformed response: never answered
    ]
    answers = run(OPENING + b"".join(lines), api)  # no request after them: EOF right away

    found = by_id(answers)
    assert_error(found.get(50), INVALID_REQUEST, "jsonrpc", '"2.0"')
    assert_error(found.get(51), INVALID_REQUEST, "jsonrpc", '"2.0"')
    assert_error(found.get(52), INVALID_REQUEST, "params", "object")
    assert_error(found.get(53), INVALID_REQUEST, "method", "string")
    assert_error(found.get(54), INVALID_REQUEST, "method")
    bad_ids = null_id_answers(answers)
    assert len(bad_ids) == 4, bad_ids
    for answer in bad_ids[:3]:
        assert_error(answer, INVALID_REQUEST, "id", "string or an integer")
    assert_error(bad_ids[3], INVALID_REQUEST, "batch")
    assert 56 not in found


@pytest.mark.slow  # starts the console script
def test_stdin_from_dev_null_exits_0_without_a_word(api: RunningFakeRespan) -> None:
    assert run(Path("/dev/null"), api) == []


@pytest.mark.parametrize("last_newline", [True, False], ids=["newline-ended", "no-final-newline"])
@pytest.mark.slow  # starts the console script
def test_a_session_replayed_from_a_file_is_answered_then_exits_0(
    last_newline: bool, tmp_path: Path, api: RunningFakeRespan, fake: FakeRespan
) -> None:
    recorded = OPENING + request(2, "tools/list") + call(3, evaluator_slug="q", numerical_value=4)
    session = tmp_path / "session.jsonl"
    session.write_bytes(recorded if last_newline else recorded.rstrip(b"\n"))
    found = by_id(run(session, api))

    assert found[1]["result"]["serverInfo"]["name"]
    assert {tool["name"] for tool in found[2]["result"]["tools"]} >= {"upsert_log_score"}
    assert not found[3]["result"].get("isError"), found[3]
    assert [(write.path, write.body) for write in fake.writes()] == [
        (f"/api/logs/{LOG_ID}/scores/", {"evaluator_slug": "q", "numerical_value": 4})
    ]


@pytest.mark.slow  # starts the console script
def test_answers_reach_stdout_when_it_is_a_regular_file(tmp_path: Path, api: RunningFakeRespan, fake: FakeRespan) -> None:
    # `respan-mcp < session.jsonl > answers.jsonl`: no pipe to wait on, so the answers take the file path.
    answers = tmp_path / "answers.jsonl"
    found = by_id(run(OPENING + LIST_TOOLS + call(3, evaluator_slug="q", numerical_value=4), api, stdout=answers))

    assert set(found) == {1, 99, 3}
    assert {tool["name"] for tool in found[99]["result"]["tools"]} >= {"upsert_log_score"}
    assert not found[3]["result"].get("isError"), found[3]
    assert [write.body for write in fake.writes()] == [{"evaluator_slug": "q", "numerical_value": 4}]


# The public low-level Server, served by serve_stdio; its tool prints, and starts a child that reports
# whether its stdin is the null device and prints too.
STRAY_SERVER = textwrap.dedent("""
    import os, subprocess, sys
    import anyio
    from mcp.server.lowlevel import Server
    from mcp.types import CallToolResult, TextContent
    from respan_mcp.serve_stdio import serve_stdio

    CHILD = "import os; print('child stdin is the null device:', os.path.samestat(os.fstat(0), os.stat(os.devnull)))"

    async def call_tool(ctx, params):
        print("a stray print", flush=True)
        subprocess.run([sys.executable, "-c", CHILD], check=True)
        return CallToolResult(content=[TextContent(type="text", text="done")])

    anyio.run(serve_stdio, Server("stray", on_call_tool=call_tool))
""")


@pytest.mark.slow
@pytest.mark.parametrize("stdout", ["pipe", "file"])
def test_stray_prints_and_children_never_touch_the_wire(stdout: str, tmp_path: Path) -> None:
    calls = request(2, "tools/call", {"name": "any", "arguments": {}}) + request(3, "tools/call", {"name": "any", "arguments": {}})
    answers, said = serve(
        [sys.executable, "-c", STRAY_SERVER], {"PATH": ""}, OPENING + calls, tmp_path / "out" if stdout == "file" else None
    )

    assert [answer["result"]["content"][0]["text"] for answer in answers if answer["id"] in (2, 3)] == ["done", "done"]
    assert said.count("a stray print") == 2, said  # on stderr, and (checked by `serve`) not on stdout
    assert said.count("child stdin is the null device: True") == 2, said  # a child cannot read the host's lines


# A tool that tries to serve stdio a second time, beside the session it is called from.
SECOND_CLAIM_SERVER = textwrap.dedent("""
    import anyio
    from mcp.server.lowlevel import Server
    from mcp.types import CallToolResult, TextContent
    from respan_mcp.serve_stdio import serve_stdio

    async def call_tool(ctx, params):
        try:
            await serve_stdio(Server("second"))
        except RuntimeError as exc:
            return CallToolResult(content=[TextContent(type="text", text=str(exc))])
        return CallToolResult(content=[TextContent(type="text", text="served twice")])

    anyio.run(serve_stdio, Server("first", on_call_tool=call_tool))
""")


@pytest.mark.slow
def test_a_second_stdio_session_in_the_process_is_refused_and_the_first_goes_on() -> None:
    calls = request(2, "tools/call", {"name": "any", "arguments": {}}) + request(3, "ping")
    answers, _ = serve([sys.executable, "-c", SECOND_CLAIM_SERVER], {"PATH": ""}, OPENING + calls)

    found = by_id(answers)
    assert "already served over stdio" in found[2]["result"]["content"][0]["text"], found[2]
    assert found[3]["result"] == {}


@pytest.mark.slow  # starts the console script
def test_stdin_and_stdout_are_handed_back_blocking(api: RunningFakeRespan) -> None:
    # The host shares these pipe ends with the server; the event loop makes them non-blocking while it serves.
    stdin_read, stdin_write = os.pipe()
    stdout_read, stdout_write = os.pipe()
    try:
        process = subprocess.Popen([console_script()], env=server_env(api.url), stdin=stdin_read, stdout=stdout_write,
                                   stderr=subprocess.DEVNULL)
        os.write(stdin_write, OPENING + LIST_TOOLS)
        os.close(stdin_write)
        stdin_write = -1
        with os.fdopen(stdout_read, "rb", closefd=False) as out:
            assert json.loads(out.readline())["id"] == 1
            assert json.loads(out.readline())["id"] == 99
        assert process.wait(timeout=EXIT_BOUND) == 0
        assert os.get_blocking(stdin_read) and os.get_blocking(stdout_write)
    finally:
        for fd in (stdin_read, stdin_write, stdout_read, stdout_write):
            if fd >= 0:
                os.close(fd)


@pytest.mark.anyio
@pytest.mark.slow  # starts the console script
def test_a_host_that_closes_stdout_first_ends_the_server_quietly_at_eof(api: RunningFakeRespan) -> None:
    process = subprocess.Popen(
        [console_script()], env=server_env(api.url), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    process.stdout.close()  # type: ignore[union-attr]  # the host stops reading answers
    _, stderr = process.communicate(OPENING + call(2, evaluator_slug="q", numerical_value=4), timeout=60)
    assert process.returncode == 0 and b"Traceback" not in stderr, stderr.decode()


@pytest.mark.anyio
async def test_a_write_to_a_full_pipe_waits_for_the_reader_and_loses_nothing() -> None:
    read_end, write_end = os.pipe()
    text = b"x" * 2**20 + b"\n"  # far past what a pipe holds (64 KiB on Linux)
    os.set_blocking(write_end, False)
    done = anyio.Event()
    try:
        async with anyio.create_task_group() as group:
            async def write() -> None:
                await write_when_ready(write_end, text)
                done.set()

            group.start_soon(write)
            for _ in range(10):
                await anyio.sleep(0)
            assert not done.is_set()  # nobody has read: the rest waits, nothing is dropped
            received = bytearray()
            while len(received) < len(text):
                await anyio.wait_readable(read_end)
                received += os.read(read_end, 2**16)
        assert done.is_set() and received == text
    finally:
        os.close(read_end)
        os.close(write_end)


@pytest.mark.anyio
@pytest.mark.slow  # starts the console script
async def test_a_client_sees_a_too_deep_call_fail_and_its_next_call_succeed(api: RunningFakeRespan, fake: FakeRespan) -> None:
    deep = json.loads(nested(MAX_DEPTH + 20, "object"))
    async with Client(StdioServerParameters(command=console_script(), args=[], env=server_env(api.url))) as client:
        with pytest.raises(MCPError, match="nesting too deep"):
            await client.call_tool("upsert_log_score", {"log_id": LOG_ID, "evaluator_slug": "q", "json_value": deep})
        result = await client.call_tool("upsert_log_score", {"log_id": LOG_ID, "evaluator_slug": "q", "numerical_value": 1})
    assert not result.is_error, result.content
    assert [write.body for write in fake.writes()] == [{"evaluator_slug": "q", "numerical_value": 1}]


# The line checks in-process: the cases above, and their edges, without a process per case.


def rejected(raw: bytes | TooLarge) -> Rejected:
    checked = check(raw)
    assert isinstance(checked, Rejected), checked
    return checked


@pytest.mark.parametrize(
    ("raw", "id"),
    [
        (b'{"jsonrpc":"2.0","id":7,"method":"x","params":{"a":tru}}', 7),  # the Python SDK's order
        (b'{"method":"x","params":{"a":tru},"jsonrpc":"2.0","id":"s-1"}', "s-1"),  # the TypeScript SDK's order
        (b'{ "id" : -3 , "method":"x","params":[}', -3),
        (b'{"method":"x","params":{"id":5,"a":tru}}', None),  # an id inside params is not the request's
        (b'{"method":"x","params":{"a":tru,"id":5}}', None),
        (b'{"method":"x","params":"\\"id\\":5}"', None),  # nor one inside a string
        (b'{"jsonrpc":"2.0","id":1.5,"method":"x",', None),
        (b'{"jsonrpc":"2.0","id":true,"method":"x",', None),
        (b"hello", None),
    ],
)
def test_a_line_that_is_not_json_is_answered_with_its_id_when_it_stands_at_either_end(raw: bytes, id: Any) -> None:
    answer = rejected(raw)
    assert (answer.code, answer.id) == (PARSE_ERROR, id)


def test_a_too_large_line_keeps_its_ends_to_find_the_id() -> None:
    lines = Lines()
    head = b'{"jsonrpc":"2.0","id":8,"method":"x","params":{"v":"'
    split = [lines.feed(part) for part in (head, b"a" * MAX_LINE_BYTES, b'"}}\n{"jsonrpc":"2.0","id":9,')]
    tail = lines.feed(b'"method":"ping"}\n')
    assert split[0] == split[1] == [] and len(split[2]) == 1 and isinstance(split[2][0], TooLarge)
    assert len(split[2][0].head) + len(split[2][0].tail) < 10_000  # the middle was not kept
    assert rejected(split[2][0]).id == 8
    assert tail == [b'{"jsonrpc":"2.0","id":9,"method":"ping"}'] and lines.rest() == []


@pytest.mark.parametrize("size", [1, 2, 7, 4096])
def test_lines_come_out_whole_however_stdin_chunks_them(size: int) -> None:
    text = OPENING + b"\n  \n" + call(3, evaluator_slug="q", numerical_value=4) + b'{"last":1}'
    lines = Lines()
    out = [line for start in range(0, len(text), size) for line in lines.feed(text[start : start + size])]
    assert out + lines.rest() == text.split(b"\n")


@pytest.mark.parametrize(
    ("value", "served"),
    [
        ("[" * 3000 + "]" * 3000, False),
        ('"' + "[" * 3000 + '"', True),  # brackets in a string are text, not nesting
        ('"\\"' + "{" * 3000 + '"', True),
        ("[" + ",".join(["{}"] * 3000) + "]", True),  # wide, not deep
        ('{"a":' * (MAX_DEPTH - 2) + "1" + "}" * (MAX_DEPTH - 2), True),
        ('{"a":' * (MAX_DEPTH - 1) + "1" + "}" * (MAX_DEPTH - 1), False),
    ],
)
def test_only_nesting_past_the_limit_is_refused(value: str, served: bool) -> None:
    checked = check(f'{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"v":{value}}}}}'.encode())
    if served:
        assert checked is not None and not isinstance(checked, Rejected), checked
    else:
        assert isinstance(checked, Rejected) and "nesting too deep" in checked.message, checked
