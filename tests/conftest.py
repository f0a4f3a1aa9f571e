"""Shared fixtures and helpers for every tier (tests/README.md says which fixture means what).

- `fake`: the Respan stand-in's state (a `FakeRespan`): knows `API_KEY` and the log `LOG_ID`.
- `api`: `fake` served on a real loopback socket (`api.url`), for the installed server and the client.
- `mcp`: the SDK's own client connected in process to `build_server`, whose API calls reach `fake`
  in process (ASGI): no socket, no subprocess. `mcp_settings` and `mcp_transport` shape that server.

A module that needs a differently seeded stand-in extends `fake` (a fixture `fake(fake)` that adds
to it), or parametrises it indirectly with `FakeRespan` options. Async tests run on anyio's pytest
plugin (mark a module with `pytestmark = pytest.mark.anyio`): fixtures and test share one task, as
the SDK's cancel scopes need.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client

from respan_mcp.config import Config
from respan_mcp.server import build_server
from tests.fake_api import FakeRespan, RunningFakeRespan

API_KEY = "test-key"
LOG_ID = "log-1"


def console_script() -> str:
    """The installed `respan-mcp`, next to this interpreter: the tests exercise the real install."""
    script = Path(sys.executable).with_name("respan-mcp")
    if not script.exists():
        raise RuntimeError(f"{script} is missing: install the project (pip install '.[test]') first")
    return str(script)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(api_url: str, **extra: str) -> dict[str, str]:
    """A minimal environment, as MCP hosts give their servers."""
    env = {"PATH": os.environ.get("PATH", ""), "RESPAN_API_KEY": API_KEY, "RESPAN_BASE_URL": api_url}
    env["HOME"] = os.environ.get("HOME", "")
    return env | extra


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> Iterator[FakeRespan]:
    """The stand-in's state: accepts `API_KEY`, knows `LOG_ID`, records every request.

    `@pytest.mark.parametrize("fake", [{"accept_any_log": True}], indirect=True)` passes other
    `FakeRespan` options; a module seeds more (evaluators, logs, keys) with a `fake(fake)` fixture."""
    options: dict[str, Any] = getattr(request, "param", {})
    fake = FakeRespan(**({"api_keys": (API_KEY,)} | options))
    fake.add_log(LOG_ID)
    yield fake
    fake.release_all()


@pytest.fixture(scope="session")
def running_api() -> Iterator[RunningFakeRespan]:
    """One loopback stand-in for the whole session; each test's `api` points it at a fresh `fake`."""
    with RunningFakeRespan(FakeRespan(api_keys=(API_KEY,))) as running:
        yield running


@pytest.fixture
def api(fake: FakeRespan, running_api: RunningFakeRespan) -> RunningFakeRespan:
    running_api.fake = fake
    return running_api


@pytest.fixture
def mcp_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """`Config` settings of the server `mcp` talks to, over `api_key=API_KEY`: a module overrides this
    fixture (e.g. `{"max_retries": 0}`); a test passes its own by indirect parametrisation,
    `@pytest.mark.parametrize("mcp_settings", [{"api_key": None}], indirect=True)`."""
    settings: dict[str, Any] = getattr(request, "param", {})
    return settings


@pytest.fixture
def mcp_transport(fake: FakeRespan) -> httpx2.AsyncBaseTransport:
    """Where the `mcp` server's API calls go: `fake`'s app, in process. A test about sockets (timeouts,
    bytes dripped slowly) uses `api` and its own server instead."""
    return httpx2.ASGITransport(app=fake.app)


@pytest.fixture
async def mcp(mcp_settings: dict[str, Any], mcp_transport: httpx2.AsyncBaseTransport) -> AsyncIterator[Client]:
    """The SDK's own client, connected in process to the real server (`build_server`)."""
    config = Config(**({"api_key": API_KEY} | mcp_settings))
    async with Client(build_server(config, transport=mcp_transport)) as client:
        yield client


@contextmanager
def http_server(*args: str, env: dict[str, str], port: int | None = None) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """Start `respan-mcp` on an HTTP transport and wait until it accepts connections."""
    port = port or free_port()
    process = subprocess.Popen(
        [console_script(), *args, "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        said = lambda: process.stderr.read().decode()  # type: ignore[union-attr]  # noqa: E731
        wait_healthy(f"http://127.0.0.1:{port}/healthz", process, said)
        yield port, process
    finally:
        stop(process)


def wait_healthy(url: str, process: subprocess.Popen[Any], said: Callable[[], str], timeout: float = 30) -> None:
    """Wait until GET `url` answers 200; fail with what the process `said` if it exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited: {said()}")
        try:
            if httpx2.get(url, timeout=2).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        if time.monotonic() > deadline:
            stop(process)  # so that what it said can be read to the end
            raise RuntimeError(f"{url} did not answer 200 within {timeout:g} s: {said()}")
        time.sleep(0.05)


def stop(process: subprocess.Popen[Any], timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
