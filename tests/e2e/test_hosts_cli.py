"""The host blocks, read by the hosts' own software: Claude Code, Gemini CLI, Codex and the MCP Inspector, from npm.

Each block from README.md / docs/hosts.md is pointed at this suite's servers (the installed console script over
stdio, with the stand-in API's base URL, or a running `--transport streamable-http` / `sse` server) and written
where the host reads it, under a temporary HOME (never the user's own configuration). Claude Code and Gemini CLI
must then report each server connected (and a dead one not); Codex's `mcp list` does not connect, so the test
checks Codex loads each block as written and starts the stdio one with exactly what Codex would hand it. The
Inspector runs the commands docs/hosts.md shows through each block its format takes: the tools listed with its
strict schema lint finding nothing, one tool called, and the blocks it cannot take refused.

The CLIs (and Node 22, which Claude Code and the Inspector need) are installed once into
~/.cache/respan-mcp-tests/npm (the Inspector into its `inspector` folder), or $RESPAN_MCP_TEST_CACHE; without npm
or the npm registry the tests skip, saying why.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import API_KEY, console_script, http_server, server_env
from tests.fake_api import RunningFakeRespan
from tests.packaging.test_host_blocks import PAGES, respan_entry

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

PACKAGES = {  # the releases these blocks were checked with; bump deliberately
    "@anthropic-ai/claude-code": "2.1.197", "@google/gemini-cli": "0.61.0", "@openai/codex": "0.171.0", "node": "22.23.3",
}
INSPECTOR = {"@modelcontextprotocol/inspector": "2.12.0", "node": "22.23.3"}  # it needs Node 22.19 or later
DEAD_URL = "http://127.0.0.1:9/mcp"  # nothing listens on the discard port: the check must be able to fail


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "respan-mcp-tests" / "npm"
    return Path(os.environ.get("RESPAN_MCP_TEST_CACHE", default))


def installed(packages: dict[str, str], root: Path, what: str) -> str:
    """A PATH with the packages' Node and commands first, installing them into `root` on first use."""
    bin_dir, node_dir = root / "node_modules" / ".bin", root / "node_modules" / "node" / "bin"
    wanted = [f"{name}@{version}" for name, version in packages.items()]
    stamp = root / "installed.json"
    if not (stamp.exists() and json.loads(stamp.read_text()) == wanted):
        if shutil.which("npm") is None:
            pytest.skip(f"npm is missing: {what} come from the npm registry")
        root.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["npm", "install", "--prefix", str(root), "--no-audit", "--no-fund", "--loglevel=error", *wanted],
            capture_output=True, text=True, timeout=900,
        )
        if done.returncode != 0:
            pytest.skip(f"could not install {what} from the npm registry: {done.stderr.strip()[-400:]}")
        stamp.write_text(json.dumps(wanted))
    return os.pathsep.join([str(node_dir), str(bin_dir), os.environ.get("PATH", "")])


@pytest.fixture(scope="module")
def cli_path() -> str:
    """A PATH with Node 22 and the three host CLIs first."""
    return installed(PACKAGES, cache_dir(), "the host CLIs (Claude Code, Gemini CLI, Codex)")


@pytest.fixture(scope="module")
def inspector_path() -> str:
    """A PATH with Node 22 and the MCP Inspector first (a folder of its own: it runs without the host CLIs)."""
    return installed(INSPECTOR, cache_dir() / "inspector", "the MCP Inspector and Node 22")


def run(command: list[str], cwd: Path, home: Path, path: str, shows_env: bool = False) -> str:
    """The CLI's output; a host must not print the key, unless asked to show a block's env (`shows_env`)."""
    done = completed(command, cwd, home, path, shows_env)
    return done.stdout + done.stderr


def completed(command: list[str], cwd: Path, home: Path, path: str, shows_env: bool = False) -> subprocess.CompletedProcess[str]:
    """The CLI run to its end, under `home`; see `run`."""
    env = {"PATH": path, "HOME": str(home), "RESPAN_API_KEY": API_KEY, "NO_COLOR": "1", "CI": "1",
           "MCP_INSPECTOR_SECRET_STORE": "memory"}  # the Inspector's: no keychain, nothing written
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert shows_env or API_KEY not in done.stdout + done.stderr, f"{command[0]} printed the key"
    return done


def pointed(entry: dict[str, Any], api_url: str, urls: dict[str, str]) -> dict[str, Any]:
    """The block's entry with the key, the command and the URLs ours; everything else as written."""
    text = json.dumps(entry).replace("your-respan-api-key", API_KEY)
    for documented, ours in urls.items():
        text = text.replace(documented, ours)
    entry = json.loads(text)
    if entry.get("command") == "respan-mcp":
        entry["command"] = console_script()
        entry["env"] = entry["env"] | {"RESPAN_BASE_URL": api_url}  # hosts pass no RESPAN_BASE_URL of their own
    return entry


@pytest.fixture
def servers(api: RunningFakeRespan) -> Iterator[dict[str, str]]:
    """The documented shared-endpoint URLs, mapped to running servers of the same transport."""
    with http_server("--transport", "streamable-http", env=server_env(api.url)) as (mcp_port, _):
        with http_server("--transport", "sse", env=server_env(api.url)) as (sse_port, _):
            yield {"http://127.0.0.1:8000/mcp": f"http://127.0.0.1:{mcp_port}/mcp",
                   "http://127.0.0.1:8000/sse": f"http://127.0.0.1:{sse_port}/sse"}


def test_claude_code_connects_to_every_block_and_command(
    cli_path: str, servers: dict[str, str], api: RunningFakeRespan, tmp_path: Path
) -> None:
    home, project = tmp_path / "home", tmp_path / "project"
    (home / ".claude").mkdir(parents=True)
    project.mkdir()
    blocks = {name: pointed(respan_entry(name), api.url, servers) for name in ("claude-code", "remote")}
    blocks["dead"] = {"type": "http", "url": DEAD_URL}
    (project / ".mcp.json").write_text(json.dumps({"mcpServers": blocks}))
    # The approval Claude Code asks for before it starts a project's servers, given up front.
    (home / ".claude" / "settings.json").write_text(json.dumps({"enableAllProjectMcpServers": True}))
    commands = re.findall(r"^claude mcp add .*$", PAGES["docs/hosts.md"], re.M)
    assert len(commands) == 2 and set(commands) <= set(re.findall(r"^claude mcp add .*$", PAGES["README.md"], re.M))
    for number, command in enumerate(commands):
        words = [servers.get(word, word).replace("your-respan-api-key", API_KEY) for word in shlex.split(command)]
        words[words.index("respan")] = f"added-{number}"  # the server's name
        if "respan-mcp" in words:
            words[words.index("respan-mcp")] = console_script()
            words[words.index("--"):words.index("--")] = ["-e", f"RESPAN_BASE_URL={api.url}"]
        run(words, project, home, cli_path)
    said = run(["claude", "mcp", "list"], project, home, cli_path)
    statuses = dict(re.findall(r"^([\w-]+): .* - \W*(\w[\w ]*)", said, re.M))
    assert statuses == {"claude-code": "Connected", "remote": "Connected", "dead": "Failed to connect",
                        "added-0": "Connected", "added-1": "Connected"}, said


def test_gemini_cli_connects_to_every_block(cli_path: str, servers: dict[str, str], api: RunningFakeRespan, tmp_path: Path) -> None:
    home, project = tmp_path / "home", tmp_path / "project"
    (home / ".gemini").mkdir(parents=True)
    project.mkdir()
    blocks = {name: pointed(respan_entry(name), api.url, servers) for name in ("gemini", "gemini-remote", "gemini-sse")}
    blocks["dead"] = {"httpUrl": DEAD_URL}
    blocks["sse-without-type"] = {"url": servers["http://127.0.0.1:8000/sse"]}  # what the docs warn against
    (home / ".gemini" / "settings.json").write_text(json.dumps({"mcpServers": blocks}))
    # Gemini CLI disables MCP servers in an untrusted folder: trust the project, as its prompt would.
    (home / ".gemini" / "trustedFolders.json").write_text(json.dumps({str(project): "TRUST_FOLDER"}))
    said = run(["gemini", "mcp", "list"], project, home, cli_path)
    statuses = dict(re.findall(r"^\W*([\w-]+): .* - (\w+)\s*$", said, re.M))
    assert statuses == {"gemini": "Connected", "gemini-remote": "Connected", "gemini-sse": "Connected",
                        "dead": "Disconnected", "sse-without-type": "Disconnected"}, said


async def test_codex_loads_every_block_and_its_stdio_block_serves(
    cli_path: str, servers: dict[str, str], api: RunningFakeRespan, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    (home / ".codex").mkdir(parents=True)
    blocks = re.findall(r"<!-- host-config: (codex[\w-]*) -->\s*```toml\n(.*?)```", PAGES["docs/hosts.md"], re.S)
    assert [name for name, _ in blocks] == ["codex", "codex-remote"]
    config = "\n".join(text.replace("[mcp_servers.respan]", f"[mcp_servers.{name}]") for name, text in blocks)
    config = config.replace('command = "respan-mcp"', f"command = {json.dumps(console_script())}")
    config = config.replace('RESPAN_API_KEY = "your-respan-api-key"', f'RESPAN_API_KEY = "{API_KEY}", RESPAN_BASE_URL = "{api.url}"')
    config = config.replace("http://127.0.0.1:8000/mcp", servers["http://127.0.0.1:8000/mcp"])
    (home / ".codex" / "config.toml").write_text(config)
    said = run(["codex", "mcp", "list", "--json"], home, home, cli_path, shows_env=True)
    listed = {server["name"]: server for server in json.loads(said[said.index("["):said.rindex("]") + 1])}
    assert set(listed) == {"codex", "codex-remote"} and all(server["enabled"] for server in listed.values())
    remote = listed["codex-remote"]["transport"]
    assert remote["type"] == "streamable_http" and remote["url"] == servers["http://127.0.0.1:8000/mcp"]
    assert remote["bearer_token_env_var"] == "RESPAN_API_KEY"
    stdio = listed["codex"]["transport"]
    assert stdio["type"] == "stdio" and stdio["command"] == console_script()
    # Codex hands a stdio server only the block's env: the server must work with just that.
    params = StdioServerParameters(command=stdio["command"], args=stdio["args"], env=stdio["env"] | {"HOME": str(home)})
    async with Client(params) as client:
        assert any(tool.name == "upsert_log_score" for tool in (await client.list_tools()).tools)


def inspector_commands() -> list[list[str]]:
    """The Inspector command lines docs/hosts.md shows, as words after `npx @modelcontextprotocol/inspector`."""
    lines = re.findall(r"^npx @modelcontextprotocol/inspector (.*)$", PAGES["docs/hosts.md"], re.M)
    assert [shlex.split(line)[-1] for line in lines] == ["tools/list", "list_evaluators"]
    return [shlex.split(line) for line in lines]


def inspect(words: list[str], config: Path, server: str, path: str) -> subprocess.CompletedProcess[str]:
    """A documented Inspector command, run against `server` in `config`, with HOME the config's folder."""
    words = [str(config) if word == "mcp.json" else server if word == "respan" else word for word in words]
    return completed(["inspector", *words], config.parent, config.parent, path)


def test_the_inspector_lists_and_calls_the_tools_through_every_block_it_reads(
    inspector_path: str, servers: dict[str, str], api: RunningFakeRespan, tmp_path: Path
) -> None:
    """The Inspector's own client checks each result against the tool's output schema, and its
    --strict lint finds no portability problem in any tool schema."""
    api.fake.add_evaluator(id="evl_safe", slug="safe", name="Safe", score_value_type="boolean",
                           passing_conditions={"primary_score": {"operator": "eq", "value": True}})
    works = ("claude-desktop", "cursor", "windsurf", "remote", "gemini-sse")
    refused = ("claude-code", "gemini", "cursor-remote")  # host-expanded keys; a url without a type
    blocks = {name: pointed(respan_entry(name), api.url, servers) for name in (*works, *refused)}
    blocks["dead"] = {"type": "http", "url": DEAD_URL}
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": blocks}))
    listing, calling = inspector_commands()
    tools = [tool["name"] for tool in json.loads((Path(__file__).parents[1] / "snapshots" / "tools.json").read_text())]
    for name in works:
        listed = inspect([*listing, "--strict"], config, name, inspector_path)
        assert listed.returncode == 0, f"{name}: {listed.stderr}"
        assert [tool["name"] for tool in json.loads(listed.stdout)["tools"]] == tools, name
        assert "Warning:" not in listed.stderr and "Schema portability" not in listed.stderr, listed.stderr
        api.fake.requests.clear()
        called = inspect(calling, config, name, inspector_path)
        assert called.returncode == 0, f"{name}: {called.stderr}"
        result = json.loads(called.stdout)
        assert not result.get("isError") and result["structuredContent"]["evaluators"], f"{name}: {result}"
        (request,) = api.fake.requests
        assert (request.path, request.headers["authorization"]) == ("/api/evaluators/", f"Bearer {API_KEY}"), name
    # A boolean evaluator's passing_value, checked by the Inspector against the published output schema.
    read = inspect([*calling[:-1], "get_evaluator", "--tool-arg", "evaluator_id=evl_safe"], config, "cursor", inspector_path)
    assert read.returncode == 0, read.stderr
    detail = json.loads(read.stdout)["structuredContent"]
    assert (detail["passing_condition"], detail["passing_operator"], detail["passing_value"]) == ("boolean_value == true", "eq", 1)
    failed = {name: inspect(listing, config, name, inspector_path) for name in (*refused, "dead")}
    for name, done in failed.items():
        assert done.returncode != 0 and '"tools"' not in done.stdout, f"{name}: {done.stdout}"
    for name in ("claude-code", "gemini"):  # the server says why
        assert "is a placeholder" in failed[name].stderr, failed[name].stderr
