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

PACKAGE = Path(__file__).resolve().parents[1] / "respan_mcp"

LAYERS = [
    # rules and settings: no imports of the package's own beyond these
    "net", "credentials", "settings", "config",
    # what can go wrong, and what to do about it
    "errors", "answers", "retry",
    # what a score is and what an evaluator allows
    "values", "evaluator", "schema", "arguments", "results",
    # the Respan API and what is kept of it
    "client", "evaluator_cache",
    # the tools
    "tools", "batch", "writes", "reads", "log_results", "logs",
    # the server and its wiring
    "prompts", "panel", "calllog", "server",
    # transports and the command line
    "auth", "check", "serve_http", "stdio_fds", "stdio_lines", "serve_stdio", "__main__",
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
    assert modules - set(LAYERS) == set(), "add the new module to LAYERS where it belongs"
    assert set(LAYERS) - modules == set(), "a module in LAYERS no longer exists"


@pytest.mark.parametrize("module", [m for m in LAYERS if (PACKAGE / f"{m}.py").exists()])
def test_imports_run_one_way(module: str) -> None:
    below = set(LAYERS[: LAYERS.index(module)])
    upward = imports_of(PACKAGE / f"{module}.py") - below - {module}
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
    the stdio transport is the eighth (tests/test_stdio.py)."""
    seen = modules_run([])
    assert set(seen) == {"server", "writes", "values", "evaluator", "evaluator_cache", "client", "results"}, seen
