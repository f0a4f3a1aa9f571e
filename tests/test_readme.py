"""The README's host configurations: every block is valid JSON, and every stdio one starts the server."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import console_script

pytestmark = pytest.mark.anyio

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
BLOCKS = dict(re.findall(r"<!-- host-config: ([\w-]+) -->\s*```json\n(.*?)```", README, re.S))
HOSTS = {"claude-desktop", "claude-code", "cursor", "vscode", "windsurf", "remote", "vscode-remote", "uvx"}


def respan_entry(name: str) -> dict[str, Any]:
    config = json.loads(BLOCKS[name])
    servers = config.get("mcpServers") or config.get("servers")
    return servers["respan"]


def test_every_host_has_a_block() -> None:
    assert set(BLOCKS) == HOSTS


@pytest.mark.parametrize("name", sorted(HOSTS))
def test_block_is_valid_json_naming_the_server(name: str) -> None:
    entry = respan_entry(name)
    if "url" in entry:
        assert entry["url"].endswith("/mcp") and entry["headers"]["Authorization"].startswith("Bearer ")
    else:
        assert "respan-mcp" in [entry["command"], *entry.get("args", [])]
        assert "RESPAN_API_KEY" in entry["env"]


def test_vscode_prompts_for_the_key_as_a_password() -> None:
    config = json.loads(BLOCKS["vscode"])
    (prompt,) = config["inputs"]
    assert prompt["password"] is True
    assert config["servers"]["respan"]["env"]["RESPAN_API_KEY"] == f"${{input:{prompt['id']}}}"


@pytest.mark.parametrize("name", sorted(n for n in HOSTS if "command" in respan_entry(n) and respan_entry(n)["command"] == "respan-mcp"))
async def test_stdio_block_starts_the_server(name: str, tmp_path: Path) -> None:
    entry = respan_entry(name)
    env = {key: "test-key" for key in entry["env"]} | {"PATH": "", "HOME": str(tmp_path)}
    async with Client(StdioServerParameters(command=console_script(), args=entry.get("args", []), env=env)) as client:
        assert any(tool.name == "upsert_log_score" for tool in (await client.list_tools()).tools)
