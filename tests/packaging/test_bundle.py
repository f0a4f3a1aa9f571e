"""The Claude Desktop bundle: a valid MCPB manifest in step with the server, and a built bundle
that starts exactly as Claude Desktop starts it and writes a score with the key from user_config."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from respan_mcp.config import Config
from respan_mcp.server import build_server
from tests.conftest import LOG_ID
from tests.fake_api import FakeRespan, RunningFakeRespan

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = json.loads((ROOT / "manifest.json").read_text())
VERSION = re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)  # type: ignore[union-attr]


async def test_manifest_lists_every_tool_the_server_serves() -> None:
    async with Client(build_server(Config())) as client:
        served = {tool.name for tool in (await client.list_tools()).tools}
        prompts = {prompt.name for prompt in (await client.list_prompts()).prompts}
    assert {tool["name"] for tool in MANIFEST["tools"]} == served
    assert {prompt["name"] for prompt in MANIFEST.get("prompts", [])} == prompts


def test_manifest_user_config_feeds_the_server() -> None:
    api_key, base_url = MANIFEST["user_config"]["api_key"], MANIFEST["user_config"]["base_url"]
    assert api_key["type"] == "string" and api_key["sensitive"] is True and api_key["required"] is True
    assert base_url["default"] == "https://api.respan.ai" and base_url["required"] is False
    env = MANIFEST["server"]["mcp_config"]["env"]
    assert env["RESPAN_API_KEY"] == "${user_config.api_key}" and env["RESPAN_BASE_URL"] == "${user_config.base_url}"
    assert env["PYTHONPATH"] == "${__dirname}/server/lib"
    assert MANIFEST["server"]["type"] == "python" and MANIFEST["manifest_version"] == "0.3"


def test_mcpb_validate_accepts_the_manifest() -> None:
    if shutil.which("npx") is None:
        pytest.skip("npx is not installed, so `mcpb validate` cannot run here")
    run = subprocess.run(
        ["npx", "-y", "@anthropic-ai/mcpb", "validate", str(ROOT / "manifest.json")],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0 and "passes" in run.stdout, run.stdout + run.stderr


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the bundle once (pip installs the package and its dependencies into server/lib)."""
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-bundle.sh")],
        cwd=ROOT, env=os.environ | {"DIST_DIR": str(dist)}, check=True, capture_output=True, timeout=600,
    )
    bundle = dist / f"respan-mcp-{VERSION}.mcpb"
    target = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(target)
    return target


def as_claude_desktop_would(value: Any, dirname: Path, user_config: dict[str, str]) -> Any:
    """Substitute ${__dirname} and ${user_config.*} in mcp_config, as the host does."""
    if isinstance(value, dict):
        return {k: as_claude_desktop_would(v, dirname, user_config) for k, v in value.items()}
    if isinstance(value, list):
        return [as_claude_desktop_would(v, dirname, user_config) for v in value]
    value = value.replace("${__dirname}", str(dirname))
    return re.sub(r"\$\{user_config\.(\w+)\}", lambda m: user_config[m.group(1)], value)


async def test_unpacked_bundle_starts_as_claude_desktop_runs_it(unpacked: Path) -> None:
    manifest = json.loads((unpacked / "manifest.json").read_text())
    assert (unpacked / manifest["server"]["entry_point"]).exists()
    assert manifest["compatibility"]["platforms"] == [sys.platform]
    fake = FakeRespan(api_keys=("key-from-user-config",))
    fake.add_log(LOG_ID)
    with RunningFakeRespan(fake) as api:
        config = as_claude_desktop_would(
            manifest["server"]["mcp_config"], unpacked, {"api_key": "key-from-user-config", "base_url": api.url}
        )
        # Only what the host passes: the bundle must not lean on this test's virtualenv.
        env = config["env"] | {"PATH": os.environ["PATH"], "HOME": str(unpacked)}
        params = StdioServerParameters(command=config["command"], args=config["args"], env=env)
        async with Client(params) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            result = await client.call_tool(
                "upsert_log_score", {"log_id": LOG_ID, "evaluator_slug": "quality", "boolean_value": True}
            )
    assert {tool["name"] for tool in manifest["tools"]} == names
    assert not result.is_error, result.content
    (write,) = fake.writes()
    assert write.headers["authorization"] == "Bearer key-from-user-config"
