"""Every property of every tool's published schemas says its type.

A property with no `type` accepts any value; the MCP Inspector's strict lint
(`--cli --method tools/list --strict`) warns about each one, and a host that maps
schemas onto a single-type dialect (Gemini's function declarations) cannot place
it. Our flat schemas have no type lists and no anyOf, so a field that can hold two
kinds of value is published as one (get_evaluator's `passing_value` is a number).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.server.test_tools_snapshot import live_tools

pytestmark = pytest.mark.anyio


def untyped(schema: dict[str, Any], path: str) -> Iterator[str]:
    """The paths of every schema under `schema` (itself included) that has no `type`."""
    if "type" not in schema:
        yield path
    for name, prop in schema.get("properties", {}).items():
        yield from untyped(prop, f"{path}.properties.{name}")
    for keyword in ("items", "additionalProperties"):
        if isinstance(schema.get(keyword), dict):
            yield from untyped(schema[keyword], f"{path}.{keyword}")


async def test_every_property_of_every_tool_schema_has_a_type() -> None:
    found = [
        f"{tool['name']}: {path}"
        for tool in await live_tools()
        for kind in ("inputSchema", "outputSchema")
        for path in untyped(tool[kind], kind)
    ]
    assert found == []


def test_the_walk_finds_an_untyped_property_at_any_depth() -> None:
    schema = {"type": "object", "properties": {
        "ok": {"type": "number"},
        "items": {"type": "array", "items": {"type": "object", "properties": {"value": {"description": "x"}}}},
        "free": {"type": "object", "additionalProperties": {}},
    }}
    assert list(untyped(schema, "s")) == ["s.properties.items.items.properties.value", "s.properties.free.additionalProperties"]

