"""What gets published: the wheel and sdist pass `twine check`, the sdist carries what its tests
need, `uvx --from <wheel> respan-mcp` runs a real session, and server.json (the MCP Registry
entry) is valid for the schema it names and in step with the package."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from mcp import Client, StdioServerParameters

from respan_mcp.config import DEFAULT_BASE_URL, ENVIRONMENT_VARIABLES
from tests.conftest import API_KEY, LOG_ID
from tests.fake_api import FakeRespan, RunningFakeRespan

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SERVER = json.loads((ROOT / "server.json").read_text())
SCHEMA = json.loads((ROOT / "tests" / "schemas" / "server.schema.json").read_text())
VERSION = re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)  # type: ignore[union-attr]
# Files the test suite reads from the source tree; an sdist without them cannot run its own tests.
SDIST_NEEDS = [
    "pyproject.toml", "README.md", "LICENSE", "manifest.json", "server.json", "Dockerfile", ".dockerignore",
    "deploy/kubernetes/deployment.yaml", "scripts/build-bundle.sh", "benchmarks/run.py", "tests/conftest.py", "tests/fake_api.py",
    "tests/schemas/server.schema.json", "CHANGELOG.md", "docs/tools.md", "docs/configuration.md", "docs/hosts.md",
    "docs/architecture.md",
]


def schema_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(document)]


def test_server_json_is_valid_for_the_schema_it_names() -> None:
    assert SERVER["$schema"] == SCHEMA["$id"]
    assert schema_errors(SERVER) == []


def test_the_schema_check_rejects_a_broken_entry() -> None:
    broken = copy.deepcopy(SERVER)
    broken["name"] = "respan-mcp"  # no namespace
    broken["remotes"][0]["url"] = "https://{host/mcp"
    del broken["packages"][0]["identifier"]
    assert len(schema_errors(broken)) == 3


def test_versions_agree_across_pyproject_manifest_and_server_json() -> None:
    manifest = json.loads((ROOT / "manifest.json").read_text())
    assert {VERSION, manifest["version"], SERVER["version"], *(p["version"] for p in SERVER["packages"])} == {VERSION}


def test_server_json_describes_this_package_and_server() -> None:
    (package,) = SERVER["packages"]
    assert (package["registryType"], package["identifier"], package["transport"]) == ("pypi", "respan-mcp", {"type": "stdio"})
    variables = {item["name"]: item for item in package["environmentVariables"]}
    assert set(variables) <= set(ENVIRONMENT_VARIABLES)
    assert variables["RESPAN_API_KEY"]["isSecret"] is True and variables["RESPAN_API_KEY"]["isRequired"] is True
    assert variables["RESPAN_BASE_URL"]["isRequired"] is False and variables["RESPAN_BASE_URL"]["default"] == DEFAULT_BASE_URL

    (remote,) = SERVER["remotes"]
    assert remote["type"] == "streamable-http" and remote["url"].endswith("/mcp")  # where streamable HTTP is served
    assert set(re.findall(r"{(\w+)}", remote["url"])) == set(remote["variables"])
    (header,) = remote["headers"]
    assert header["name"] == "Authorization" and header["value"].startswith("Bearer ") and header["isSecret"] is True
    assert set(re.findall(r"{(\w+)}", header["value"])) == set(header["variables"])

    # The registry confirms a PyPI package's owner by this line in the package's description.
    assert f"<!-- mcp-name: {SERVER['name']} -->" in (ROOT / "README.md").read_text()


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m build` once: an sdist, and a wheel built from that sdist."""
    out = tmp_path_factory.mktemp("dist")
    run = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return out


def built(dist: Path, suffix: str) -> Path:
    (path,) = dist.glob(f"respan_mcp-{VERSION}{suffix}")
    return path


def test_twine_check_passes_on_wheel_and_sdist(dist: Path) -> None:
    files = [built(dist, "-py3-none-any.whl"), built(dist, ".tar.gz")]
    run = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, files)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0 and run.stdout.count("PASSED") == 2, run.stdout + run.stderr


def test_wheel_metadata_names_the_command_readme_and_registry_entry(dist: Path) -> None:
    with zipfile.ZipFile(built(dist, "-py3-none-any.whl")) as wheel:
        info = f"respan_mcp-{VERSION}.dist-info"
        metadata = Parser().parsestr(wheel.read(f"{info}/METADATA").decode())
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
        names = wheel.namelist()
    assert (metadata["Name"], metadata["Version"], metadata["License-Expression"]) == ("respan-mcp", VERSION, "MIT")
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert f"mcp-name: {SERVER['name']}" in metadata.get_payload()
    assert "respan-mcp = respan_mcp.__main__:main" in entry_points
    assert f"{info}/licenses/LICENSE" in names
    assert not [name for name in names if name.startswith("tests/")]


def test_sdist_carries_what_its_tests_need(dist: Path) -> None:
    with tarfile.open(built(dist, ".tar.gz")) as sdist:
        prefix = f"respan_mcp-{VERSION}/"
        names = {name.removeprefix(prefix) for name in sdist.getnames()}
    sources = [
        path.relative_to(ROOT).as_posix()
        for folder in ("respan_mcp", "tests")
        for path in (ROOT / folder).rglob("*")
        # node_modules is what `npm ci` installs from tests/oidc's lock file, not a source.
        if path.is_file() and "__pycache__" not in path.parts and "node_modules" not in path.parts
    ]
    missing = [name for name in [*SDIST_NEEDS, *sources] if name not in names]
    assert missing == []
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc") or "node_modules" in name]


def uv_environment() -> dict[str, str]:
    """uv does not read pip's configuration: hand it the same indexes, find-links and CA file."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60
    ).stdout
    pip = {key.split(".", 1)[1]: value.strip("'") for key, value in re.findall(r"^(\S+?)=(.*)$", listed, re.M)}
    env = dict(os.environ)
    for option, variable in [
        ("index-url", "UV_DEFAULT_INDEX"), ("extra-index-url", "UV_INDEX"), ("find-links", "UV_FIND_LINKS"),
        ("cert", "SSL_CERT_FILE"),
    ]:
        if pip.get(option) and variable not in env:
            env[variable] = pip[option]
    return env


def uvx() -> str:
    script = Path(sys.executable).with_name("uvx")
    assert script.exists(), "uvx is missing: pip install '.[test]' (the uv package ships it)"
    return str(script)


def test_uvx_from_the_wheel_prints_help(dist: Path) -> None:
    wheel = built(dist, "-py3-none-any.whl")
    run = subprocess.run(
        [uvx(), "--python", sys.executable, "--from", str(wheel), "respan-mcp", "--help"],
        env=uv_environment(), capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("usage: respan-mcp") and "RESPAN_API_KEY" in run.stdout


@pytest.mark.anyio
async def test_uvx_from_the_wheel_serves_a_session(dist: Path) -> None:
    """What an MCP host does with the registry entry: start it with uvx and call a tool."""
    fake = FakeRespan(api_keys=(API_KEY,))
    fake.add_log(LOG_ID)
    wheel = built(dist, "-py3-none-any.whl")
    with RunningFakeRespan(fake) as api:
        env = uv_environment() | {"RESPAN_API_KEY": API_KEY, "RESPAN_BASE_URL": api.url}
        params = StdioServerParameters(
            command=uvx(), args=["--python", sys.executable, "--from", str(wheel), "respan-mcp"], env=env
        )
        async with Client(params) as client:
            result = await client.call_tool("upsert_log_score", {"log_id": LOG_ID, "evaluator_slug": "q", "boolean_value": True})
    assert not result.is_error, result.content
    (write,) = fake.writes()
    assert write.headers["authorization"] == f"Bearer {API_KEY}" and write.body == {"evaluator_slug": "q", "boolean_value": True}
