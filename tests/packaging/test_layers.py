"""The package's shape, kept: imports run one way, and a warm write crosses few modules.

`LAYERS` lists the modules from the bottom up; a module may import only modules listed
before it (type hints included), so no arrow runs back up and there is no circle. A new
module goes in the list where it belongs, which is the review of where it sits.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client

from respan_mcp.config import Config
from respan_mcp.server import build_server

PACKAGE = Path(__file__).resolve().parents[2] / "respan_mcp"

LAYERS = [
    # the stand-in of the Respan API (the sandbox's and the tests'): nothing of the server's
    "standin",
    # rules and settings: no imports of the package's own beyond these
    "net", "credentials", "settings", "setting_kinds", "config",
    # what can go wrong, and what to do about it
    "errors", "answers", "retry",
    # what a score is and what an evaluator allows
    "values", "evaluator_fields", "evaluator", "schema", "arguments", "results", "evaluator_results",
    # the Respan API and what is kept of it
    "client", "evaluator_cache",
    # the tools
    "tools", "batch_items", "batch_report", "batch", "writes", "reads", "log_results", "logs",
    # the server and its wiring
    "prompt_text", "prompts", "panel", "calllog", "instructions", "failures", "server",
    # transports and the command line
    "identity_provider", "auth", "check", "http_connections", "http_drain", "serve_http",
    "stdio_lines", "stdio_process", "stdio_wire", "serve_stdio", "__main__",
]


def imports_of(path: Path) -> set[str]:
    """The package modules a file imports, at the top or anywhere below (type-checking blocks too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "respan_mcp":
            parts = node.module.split(".")
            found |= {parts[1]} if len(parts) > 1 else {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("respan_mcp.")}
    return found


def test_every_module_has_a_place_in_the_layers() -> None:
    modules = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__"}
    modules |= {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert modules - set(LAYERS) == set(), "add the new module to LAYERS where it belongs"
    assert set(LAYERS) - modules == set(), "a module in LAYERS no longer exists"


@pytest.mark.parametrize("module", LAYERS)
def test_imports_run_one_way(module: str) -> None:
    below = set(LAYERS[: LAYERS.index(module)])
    files = [PACKAGE / f"{module}.py"] if (PACKAGE / f"{module}.py").exists() else sorted((PACKAGE / module).glob("*.py"))
    upward = set().union(*(imports_of(path) for path in files)) - below - {module}
    assert upward == set(), f"{module} imports {sorted(upward)}, which sit above it (or beside it) in LAYERS"


# -- the warm path ----------------------------------------------------------------------------------

EVALUATOR = {
    "id": "ev-1",
    "evaluator_slug": "helpfulness",
    "name": "Helpfulness",
    "score_value_type": "numerical",
    "score_config": {"min_score": 1, "max_score": 5},
    "passing_conditions": {"primary_score": {"operator": "gte", "value": 3}},
}


def answer(request: httpx2.Request) -> httpx2.Response:
    if request.url.path == "/api/evaluators/":
        return httpx2.Response(200, json={"count": 1, "next": None, "previous": None, "results": [EVALUATOR]})
    return httpx2.Response(201, json={"id": "s-1", "evaluator_id": "ev-1", "numerical_value": 4.0, "log_id": "log-1"})


def modules_run(calls: list[Any]) -> dict[str, set[str]]:
    """Which package modules ran code (a function of theirs was called) while `calls` ran, and which functions."""
    seen: dict[str, set[str]] = {}

    def profile(frame: Any, event: str, _arg: Any) -> None:
        if event == "call" and frame.f_code.co_filename.startswith(str(PACKAGE)):
            seen.setdefault(Path(frame.f_code.co_filename).stem, set()).add(frame.f_code.co_name)

    async def main() -> None:
        server = build_server(Config(api_key="warm-path-key-0001"), transport=httpx2.MockTransport(answer))
        async with Client(server) as client:
            arguments = {"log_id": "log-1", "evaluator_slug": "helpfulness", "numerical_value": 4}
            assert not (await client.call_tool("upsert_log_score", arguments)).is_error  # cold: the lookup
            sys.setprofile(profile)
            try:
                result = await client.call_tool("upsert_log_score", arguments)  # warm
            finally:
                sys.setprofile(None)
            assert not result.is_error
            calls.append(result)

    anyio.run(main)
    return seen


def test_a_warm_write_runs_code_from_seven_modules_before_the_transport() -> None:
    """The call path, the write, the value and evaluator rules, the cache, the client and the result:
    the stdio transport's wire (stdio_wire) is the eighth (tests/e2e/test_stdio.py)."""
    seen = modules_run([])
    assert set(seen) == {"server", "writes", "values", "evaluator", "evaluator_cache", "client", "results"}, seen


# Run inside the server process: the package modules that run code from the second tools/call until
# its answer is written (the transport's `_cross_off`), not the start or the end of the session.
PROBE = r"""
import json, os, sys
from pathlib import Path
package = str(Path(__import__("respan_mcp").__file__).parent)
seen, calls, done, started = set(), [0], [False], set()
def profile(frame, event, arg):
    if event != "call" or done[0]:
        return
    path = frame.f_code.co_filename
    if path.startswith(package):
        # A coroutine's every resumption is a "call" too: count each call_tool once, by its frame.
        if frame.f_code.co_name == "call_tool" and path.endswith("server.py") and frame not in started:
            started.add(frame)
            calls[0] += 1
        if calls[0] >= 2:
            seen.add(Path(path).stem)
            done[0] = frame.f_code.co_name == "_cross_off"
sys.setprofile(profile)
from respan_mcp.config import load_config
from respan_mcp.serve_stdio import run
try:
    run(load_config())
finally:
    sys.setprofile(None)
    os.write(2, ("MODULES " + json.dumps(sorted(seen)) + "\n").encode())
"""


@pytest.mark.slow
def test_a_warm_write_over_stdio_runs_code_from_at_most_eight_modules(api: Any) -> None:
    import json as json_
    import subprocess

    from tests.conftest import server_env

    api.fake.add_evaluator(
        id="ev-1", slug="helpfulness", name="Helpfulness", score_value_type="numerical",
        score_config={"min_score": 1, "max_score": 5},
    )
    call = {"log_id": "log-1", "evaluator_slug": "helpfulness", "numerical_value": 4}
    lines = [
        {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "upsert_log_score", "arguments": call}},
    ]
    first = "".join(json_.dumps(line) + "\n" for line in lines)
    warm = json_.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                        "params": {"name": "upsert_log_score", "arguments": call}}) + "\n"
    process = subprocess.Popen(
        [sys.executable, "-c", PROBE], env=server_env(api.url), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(first)
    process.stdin.flush()
    answers = [json_.loads(process.stdout.readline()) for _ in range(2)]  # initialize, the cold write
    process.stdin.write(warm)
    process.stdin.close()
    answers.append(json_.loads(process.stdout.readline()))
    process.wait(timeout=60)
    stderr = process.stderr.read() if process.stderr else ""
    assert [a.get("id") for a in answers] == [0, 1, 2] and not answers[2]["result"].get("isError"), answers
    modules = json_.loads(stderr.rsplit("MODULES ", 1)[1])
    assert len(modules) <= 8, " ".join(modules)
    assert {"server", "writes", "client", "stdio_wire"} <= set(modules), modules


def test_no_private_sdk_module_is_imported_anywhere() -> None:
    """The SDK's `_`-prefixed modules and `mcpserver.utilities` are internal: a minor release may change them."""
    root = PACKAGE.parent
    offenders = []
    for path in [*PACKAGE.glob("*.py"), *(root / "tests").rglob("*.py"), *(root / "benchmarks").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                parts = name.split(".")
                if parts[0] in ("mcp", "mcpserver") and (any(p.startswith("_") for p in parts) or "utilities" in parts):
                    offenders.append(f"{path.relative_to(root)}: {name}")
    assert offenders == []
