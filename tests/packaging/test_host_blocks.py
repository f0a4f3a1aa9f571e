"""The host configurations in README.md and docs/: every block parses in its host's format, and every stdio one starts
the server; a block the README shows is the one docs/hosts.md shows; the sign-in blocks name the server docs/team.md
starts. (tests/e2e/test_hosts_cli.py has the hosts' own CLIs read them.)"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from mcp import Client, StdioServerParameters

from respan_mcp.config import ENVIRONMENT_VARIABLES
from tests.conftest import console_script

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
PAGES = {name: (ROOT / name).read_text() for name in ("README.md", "docs/hosts.md", "docs/team.md")}
BLOCK = re.compile(r"<!-- host-config: ([\w-]+) -->\s*```(json|toml|yaml)\n(.*?)```", re.S)
FOUND = [(page, name, language, text) for page, markdown in PAGES.items() for name, language, text in BLOCK.findall(markdown)]
BLOCKS = {name: (language, text) for _, name, language, text in FOUND}
README_BLOCKS = {name for page, name, _, _ in FOUND if page == "README.md"}
SIGNIN_HOSTS = {"signin-claude-code", "signin-vscode", "signin-cursor"}
HOSTS = {
    "claude-desktop", "claude-code", "cursor", "vscode", "windsurf", "remote", "cursor-remote", "vscode-remote", "uvx",
    "gemini", "gemini-remote", "gemini-sse", "codex", "codex-remote", "goose", "goose-remote", "zed", "zed-remote",
} | SIGNIN_HOSTS
(SIGNIN,) = re.findall(r"<!-- signin-start -->(.*?)<!-- signin-end -->", PAGES["docs/team.md"], re.S)
PARSERS: dict[str, Callable[[str], Any]] = {"json": json.loads, "toml": tomllib.loads, "yaml": yaml.safe_load}


def config(name: str) -> dict[str, Any]:
    language, text = BLOCKS[name]
    parsed: dict[str, Any] = PARSERS[language](text)
    return parsed


def respan_entry(name: str) -> dict[str, Any]:
    """The `respan` entry of a block, wherever its host keeps servers."""
    parsed = config(name)
    for key in ("mcpServers", "servers", "mcp_servers", "extensions", "context_servers"):
        if key in parsed:
            entry: dict[str, Any] = parsed[key]["respan"]
            return entry
    raise AssertionError(f"{name}: no server table in {sorted(parsed)}")


def launch(entry: dict[str, Any]) -> tuple[str, list[str], dict[str, str]] | None:
    """(command, args, env) of a stdio entry, in any host's spelling; None for a remote one."""
    if "cmd" in entry:  # Goose
        return entry["cmd"], entry.get("args", []), entry["envs"]
    if "command" in entry:
        return entry["command"], entry.get("args", []), entry["env"]
    return None


# Blocks that start the installed console script (uvx's needs a package index).
STARTABLE = sorted(name for name in BLOCKS if (launch(respan_entry(name)) or ("",))[0] == "respan-mcp")


def test_every_host_has_a_block() -> None:
    assert set(BLOCKS) == HOSTS


def test_hosts_md_holds_every_block_but_sign_in_and_the_readme_shows_the_same_ones() -> None:
    in_hosts = {name: (language, text) for page, name, language, text in FOUND if page == "docs/hosts.md"}
    assert set(in_hosts) == HOSTS - SIGNIN_HOSTS
    assert README_BLOCKS == {"claude-desktop", "claude-code", "remote"}
    for page, name, language, text in FOUND:
        if page == "README.md":
            assert (language, text) == in_hosts[name], f"README's {name} block differs from docs/hosts.md's"


@pytest.mark.parametrize("name", sorted(HOSTS - SIGNIN_HOSTS))
def test_block_parses_and_names_the_server(name: str) -> None:
    entry = respan_entry(name)
    started = launch(entry)
    if started is None:
        url = entry.get("url") or entry.get("httpUrl") or entry.get("uri")
        assert url == ("http://127.0.0.1:8000/sse" if name == "gemini-sse" else "http://127.0.0.1:8000/mcp")
        if "bearer_token_env_var" in entry:  # Codex reads the key from the environment
            assert entry["bearer_token_env_var"] == "RESPAN_API_KEY"
        else:
            assert entry["headers"]["Authorization"].startswith("Bearer ")
    else:
        command, args, env = started
        assert "respan-mcp" in [command, *args]
        assert "RESPAN_API_KEY" in env


def test_gemini_uses_httpurl_for_streamable_http_and_a_type_for_sse() -> None:
    # Gemini CLI tries a `url` without `type` as streamable HTTP, so SSE must say so.
    assert "url" not in respan_entry("gemini-remote") and "httpUrl" in respan_entry("gemini-remote")
    assert respan_entry("gemini-sse")["type"] == "sse"


@pytest.mark.parametrize("name", ["remote", "vscode-remote"])
def test_a_shared_endpoint_block_names_its_transport_where_the_host_format_has_one(name: str) -> None:
    # Claude Code skips an entry with a `url` and no `type`; so does the Inspector's --config.
    assert respan_entry(name)["type"] == "http"


def test_goose_entries_are_enabled_extensions_of_a_known_type() -> None:
    for name, kind in (("goose", "stdio"), ("goose-remote", "streamable_http")):
        entry = respan_entry(name)
        assert entry["type"] == kind and entry["enabled"] is True and entry["name"] == "respan"


def test_vscode_prompts_for_the_key_as_a_password() -> None:
    parsed = config("vscode")
    (prompt,) = parsed["inputs"]
    assert prompt["password"] is True
    assert parsed["servers"]["respan"]["env"]["RESPAN_API_KEY"] == f"${{input:{prompt['id']}}}"


@pytest.mark.parametrize("name", STARTABLE)
@pytest.mark.slow  # starts the console script
async def test_stdio_block_starts_the_server(name: str, tmp_path: Path) -> None:
    started = launch(respan_entry(name))
    assert started is not None
    _, args, block_env = started
    env = {key: "test-key" for key in block_env} | {"PATH": "", "HOME": str(tmp_path)}
    async with Client(StdioServerParameters(command=console_script(), args=args, env=env)) as client:
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


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_variable_a_page_names_exists(page: str) -> None:
    named = set(re.findall(r"RESPAN_[A-Z_]*[A-Z]\b", PAGES[page]))
    assert named - set(ENVIRONMENT_VARIABLES) == set()


def test_the_kubernetes_settings_team_md_shows_are_the_manifests_commented_ones() -> None:
    manifest = (ROOT / "deploy" / "kubernetes" / "deployment.yaml").read_text()
    commented = set(re.findall(r"#\s*- name: (\S+)\s*\n\s*#\s*value: (\S+)", manifest))
    (snippet,) = re.findall(r"(?<!-->\n)```yaml\n(.*?)```", PAGES["docs/team.md"], re.S)
    shown = set(re.findall(r"- name: (\S+)\s*\n\s*value: (\S+)", snippet))
    assert shown and shown <= commented
