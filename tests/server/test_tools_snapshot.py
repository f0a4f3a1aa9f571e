"""The wire form of every tool, held against a committed snapshot, and accepted by every host's schema model.

A schema change is then a reviewed diff of tests/snapshots/tools.json rather than a surprise to
hosts. To accept a deliberate change: `UPDATE_SNAPSHOT=1 python -m pytest tests/server/test_tools_snapshot.py`
rewrites the file and fails (so a rewrite never passes unseen); look at the diff, then run it again without.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from google.genai import types as genai
from mcp import Client

from respan_mcp.config import Config
from respan_mcp.server import build_server
from tests.unit.test_models import assert_flat

pytestmark = pytest.mark.anyio

SNAPSHOT = Path(__file__).parents[1] / "snapshots" / "tools.json"


async def live_tools() -> list[dict[str, Any]]:
    async with Client(build_server(Config(api_key="sk-snapshot"))) as client:
        tools = (await client.list_tools()).tools
    return [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools]


async def test_tools_list_matches_the_committed_snapshot() -> None:
    live = await live_tools()
    if os.environ.get("UPDATE_SNAPSHOT") == "1":
        written = json.dumps(live, indent=2, sort_keys=True) + "\n"
        changed = not SNAPSHOT.exists() or SNAPSHOT.read_text() != written
        SNAPSHOT.write_text(written)
        pytest.fail(f"tests/snapshots/tools.json rewritten ({'changed' if changed else 'unchanged'}): review the diff, "
                    "then run again without UPDATE_SNAPSHOT")
    committed = json.loads(SNAPSHOT.read_text())
    assert [t["name"] for t in live] == [t["name"] for t in committed]
    for tool, expected in zip(live, committed, strict=True):
        assert tool == expected, f"{tool['name']} differs from tests/snapshots/tools.json (see this file's docstring)"


async def test_every_input_schema_is_accepted_by_geminis_schema_model() -> None:
    for tool in await live_tools():
        schema = genai.Schema.model_validate(tool["inputSchema"])  # raises on what Gemini refuses
        assert schema.type == genai.Type.OBJECT and schema.properties, tool["name"]


def test_geminis_schema_model_refuses_what_it_cannot_take() -> None:
    """The check above can fail: exclusiveMinimum (pydantic's `gt`) is refused."""
    with pytest.raises(ValueError):
        genai.Schema.model_validate({"type": "object", "properties": {"x": {"type": "number", "exclusiveMinimum": 0}}})


async def test_every_tool_is_titled_annotated_described_and_flat() -> None:
    for tool in await live_tools():
        assert tool["title"] and tool["description"] and tool["annotations"]
        assert_flat(tool["inputSchema"])
        assert_flat(tool["outputSchema"])
