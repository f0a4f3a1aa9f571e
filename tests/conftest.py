"""Async tests run on anyio's pytest plugin (mark a module with `pytestmark = pytest.mark.anyio`):
fixtures and test share one task, as the SDK's cancel scopes need."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
