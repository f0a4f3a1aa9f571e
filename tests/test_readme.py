"""The README's host configurations: every block is valid JSON, and every stdio one starts the server;
the sign-in blocks name the server the README starts; every variable the README names exists."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from respan_mcp.config import ENVIRONMENT_VARIABLES
from tests.conftest import console_script

pytestmark = pytest.mark.anyio

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
BLOCKS = dict(re.findall(r"<!-- host-config: ([\w-]+) -->\s*```json\n(.*?)```", README, re.S))
SIGNIN_HOSTS = {"signin-claude-code", "signin-vscode", "signin-cursor"}
HOSTS = {"claude-desktop", "claude-code", "cursor", "vscode", "windsurf", "remote", "vscode-remote", "uvx"} | SIGNIN_HOSTS
(SIGNIN,) = re.findall(r"<!-- signin-start -->(.*?)<!-- signin-end -->", README, re.S)


def respan_entry(name: str) -> dict[str, Any]:
    config = json.loads(BLOCKS[name])
    servers = config.get("mcpServers") or config.get("servers")
    return servers["respan"]


def test_every_host_has_a_block() -> None:
    assert set(BLOCKS) == HOSTS


@pytest.mark.parametrize("name", sorted(HOSTS - SIGNIN_HOSTS))
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


def signin_resource() -> str:
    """`{public-url}/mcp` of the server the sign-in section starts."""
    (public_url,) = re.findall(r"--public-url (\S+)", SIGNIN)
    (issuer,) = re.findall(r"--oauth-issuer (\S+)", SIGNIN)
    assert issuer.startswith("https://") and public_url.startswith("https://")
    return f"{public_url}/mcp"


@pytest.mark.parametrize("name", sorted(SIGNIN_HOSTS))
def test_a_signin_block_names_the_server_and_carries_no_key(name: str) -> None:
    entry = respan_entry(name)
    assert entry["url"] == signin_resource()
    assert set(entry) <= {"type", "url"}  # the host signs in by itself: no headers, no key, no env
    if name != "signin-cursor":
        assert entry["type"] == "http"  # streamable HTTP, the host's word for it


def test_the_claude_code_command_adds_the_same_url_over_http() -> None:
    (command,) = re.findall(r"^claude mcp add .*$", SIGNIN, re.M)
    assert command.split() == ["claude", "mcp", "add", "--transport", "http", "respan", signin_resource()]


def test_every_variable_the_readme_names_exists() -> None:
    named = set(re.findall(r"RESPAN_[A-Z_]*[A-Z]\b", README))
    assert named - set(ENVIRONMENT_VARIABLES) == set()


def test_the_readmes_kubernetes_settings_are_the_manifests_commented_ones() -> None:
    manifest = (Path(__file__).resolve().parent.parent / "deploy" / "kubernetes" / "deployment.yaml").read_text()
    commented = set(re.findall(r"#\s*- name: (\S+)\s*\n\s*#\s*value: (\S+)", manifest))
    (snippet,) = re.findall(r"```yaml\n(.*?)```", README, re.S)
    shown = set(re.findall(r"- name: (\S+)\s*\n\s*value: (\S+)", snippet))
    assert shown and shown <= commented
