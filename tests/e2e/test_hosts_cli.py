"""The host blocks, read by the hosts' own software: Claude Code, Gemini CLI and Codex, installed from npm.

Each block from README.md / docs/hosts.md is pointed at this suite's servers (the installed console script over
stdio, with the stand-in API's base URL, or a running `--transport streamable-http` / `sse` server) and written
where the host reads it, under a temporary HOME (never the user's own configuration). Claude Code and Gemini CLI
must then report each server connected (and a dead one not); Codex's `mcp list` does not connect, so the test
checks Codex loads each block as written and starts the stdio one with exactly what Codex would hand it.

The CLIs (and Node 22, which Claude Code needs) are installed once into ~/.cache/respan-mcp-tests/npm, or
$RESPAN_MCP_TEST_CACHE; without npm or the npm registry the tests skip, saying why.
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
DEAD_URL = "http://127.0.0.1:9/mcp"  # nothing listens on the discard port: the check must be able to fail


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "respan-mcp-tests" / "npm"
    return Path(os.environ.get("RESPAN_MCP_TEST_CACHE", default))


@pytest.fixture(scope="module")
def cli_path() -> str:
    """A PATH with Node 22 and the three host CLIs first, installing them on first use."""
    root = cache_dir()
    bin_dir, node_dir = root / "node_modules" / ".bin", root / "node_modules" / "node" / "bin"
    wanted = [f"{name}@{version}" for name, version in PACKAGES.items()]
    stamp = root / "installed.json"
    if not (stamp.exists() and json.loads(stamp.read_text()) == wanted):
        if shutil.which("npm") is None:
            pytest.skip("npm is missing: the host CLIs (Claude Code, Gemini CLI, Codex) come from the npm registry")
        root.mkdir(parents=True, exist_ok=True)
        installed = subprocess.run(
            ["npm", "install", "--prefix", str(root), "--no-audit", "--no-fund", "--loglevel=error", *wanted],
            capture_output=True, text=True, timeout=900,
        )
        if installed.returncode != 0:
            pytest.skip(f"could not install the host CLIs from the npm registry: {installed.stderr.strip()[-400:]}")
        stamp.write_text(json.dumps(wanted))
    return os.pathsep.join([str(node_dir), str(bin_dir), os.environ.get("PATH", "")])


def run(command: list[str], cwd: Path, home: Path, path: str, shows_env: bool = False) -> str:
    """The CLI's output; a host must not print the key, unless asked to show a block's env (`shows_env`)."""
    env = {"PATH": path, "HOME": str(home), "RESPAN_API_KEY": API_KEY, "NO_COLOR": "1", "CI": "1"}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    said = done.stdout + done.stderr
    assert shows_env or API_KEY not in said, f"{command[0]} printed the key"
    return said


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
