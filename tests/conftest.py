"""Shared fixtures: the loopback Respan stand-in and the installed server started as a subprocess.

Async tests run on anyio's pytest plugin (mark a module with `pytestmark = pytest.mark.anyio`):
fixtures and test share one task, as the SDK's cancel scopes need.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest

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
def fake() -> FakeRespan:
    fake = FakeRespan(api_keys=(API_KEY,))
    fake.add_log(LOG_ID)
    return fake


@pytest.fixture(scope="session")
def running_api() -> Iterator[RunningFakeRespan]:
    """One loopback stand-in for the whole session; each test's `api` points it at a fresh `fake`."""
    with RunningFakeRespan(FakeRespan(api_keys=(API_KEY,))) as running:
        yield running


@pytest.fixture
def api(fake: FakeRespan, running_api: RunningFakeRespan) -> RunningFakeRespan:
    running_api.fake = fake
    return running_api


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
