"""docs/tools.md and the README's tool table are rendered from the live server's tools/list and
prompts/list, so they cannot drift from the code.

After a deliberate change to a tool: `UPDATE_SNAPSHOT=1 python -m pytest tests/packaging/test_docs_tools.py`
rewrites both for review (the run still fails, so a rewrite is never mistaken for a pass).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from respan_mcp.config import Config
from respan_mcp.server import build_server

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "tools.md"
README = ROOT / "README.md"
TABLE_START, TABLE_END = "<!-- tools:start -->\n", "<!-- tools:end -->\n"
HINTS = ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint")


async def live_server() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What a host sees: every tool and every prompt, in their wire form."""
    async with Client(build_server(Config(api_key="sk-docs-render"))) as client:
        tools = (await client.list_tools()).tools
        prompts = (await client.list_prompts()).prompts
    dump = lambda item: item.model_dump(mode="json", by_alias=True, exclude_none=True)  # noqa: E731
    return [dump(tool) for tool in tools], [dump(prompt) for prompt in prompts]


def cell(text: str) -> str:
    """Text that stays inside one Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def first_sentence(text: str) -> str:
    sentence = re.split(r"(?<=[.!?])\s+(?=[A-Z])", " ".join(text.split()), maxsplit=1)[0]
    return sentence if len(sentence) <= 120 else sentence[:117].rsplit(" ", 1)[0].rstrip(",:;") + "..."


def type_of(schema: dict[str, Any]) -> str:
    """A field's JSON type and bounds, as an agent must meet them."""
    kind = str(schema.get("type", "any"))
    if kind == "array":
        kind = f"array of {type_of(schema.get('items', {}))}"
    if "enum" in schema:
        kind += " (" + ", ".join(f"`{choice}`" for choice in schema["enum"]) + ")"
    bounds = [
        f"{word} {schema[key]:g}" if isinstance(schema[key], float) else f"{word} {schema[key]}"
        for key, word in (("minimum", ">="), ("maximum", "<="), ("minLength", "length >="), ("minItems", "items >="),
                          ("maxItems", "items <="))
        if key in schema
    ]
    return kind + (", " + ", ".join(bounds) if bounds else "")


def field_rows(schema: dict[str, Any], prefix: str = "", with_required: bool = True) -> list[str]:
    """One table row per field, nested objects and array items as `parent.child` / `parent[].child`."""
    rows: list[str] = []
    required = set(schema.get("required", []))
    for name, field in sorted(schema.get("properties", {}).items()):
        path = f"{prefix}{name}"
        columns = [f"`{path}`", cell(type_of(field))]
        if with_required:
            columns.append("yes" if name in required else "")
        columns.append(cell(field.get("description", "")))
        rows.append("| " + " | ".join(columns) + " |")
        nested = field.get("items", {}) if field.get("type") == "array" else field
        if nested.get("properties"):
            rows += field_rows(nested, f"{path}[]." if nested is not field else f"{path}.", with_required)
    return rows


def render_tool(tool: dict[str, Any]) -> str:
    annotations = tool.get("annotations", {})
    hints = ", ".join(f"`{hint}: {str(annotations[hint]).lower()}`" for hint in HINTS if hint in annotations)
    lines = [f"## `{tool['name']}`", "", f"**{tool.get('title', tool['name'])}**. {' '.join(tool['description'].split())}",
             "", f"Annotations: {hints}."]
    if ui := tool.get("_meta", {}).get("ui", {}).get("resourceUri"):
        lines.append(f"Hosts that render MCP Apps show the result in the panel `{ui}`.")
    lines += ["", "Arguments:", "", "| argument | type | required | description |", "|---|---|---|---|"]
    lines += field_rows(tool["inputSchema"])
    if "outputSchema" in tool:
        lines += ["", "Result (`structuredContent`; fields the API leaves empty are omitted):", "",
                  "| field | type | description |", "|---|---|---|"]
        lines += field_rows(tool["outputSchema"], with_required=False)
    return "\n".join(lines) + "\n"


def render_prompt(prompt: dict[str, Any]) -> str:
    lines = [f"## `{prompt['name']}` (prompt)", "", " ".join(prompt.get("description", "").split()), "",
             "| argument | required | description |", "|---|---|---|"]
    lines += [f"| `{argument['name']}` | {'yes' if argument.get('required') else ''} | {cell(argument.get('description', ''))} |"
              for argument in prompt.get("arguments", [])]
    return "\n".join(lines) + "\n"


def render_reference(tools: list[dict[str, Any]], prompts: list[dict[str, Any]]) -> str:
    head = (
        "# Tool reference\n\n"
        "<!-- Generated from the server's tools/list and prompts/list by tests/packaging/test_docs_tools.py; do not edit. -->\n\n"
        "Every tool and prompt the server offers, as a host receives them. Which situations each tool is\n"
        "for, and what an agent can count on when something goes wrong, are in [guarantees.md](guarantees.md).\n\n"
        + "".join(f"- [`{tool['name']}`](#{tool['name']}): {cell(tool.get('title', ''))}\n" for tool in tools)
        + "".join(f"- [`{prompt['name']}`](#{prompt['name']}-prompt) (prompt)\n" for prompt in prompts)
    )
    return "\n".join([head, *map(render_tool, tools), *map(render_prompt, prompts)])


def render_table(tools: list[dict[str, Any]]) -> str:
    rows = [f"| [`{tool['name']}`](docs/tools.md#{tool['name']}) | {cell(tool.get('title', ''))} | "
            f"{cell(first_sentence(tool['description']))} |" for tool in tools]
    return "| tool | title | what it does |\n|---|---|---|\n" + "\n".join(rows) + "\n"


def readme_with(table: str) -> str:
    readme = README.read_text()
    before, rest = readme.split(TABLE_START, 1)
    return before + TABLE_START + table + TABLE_END + rest.split(TABLE_END, 1)[1]


async def test_the_tool_reference_and_the_readme_table_match_the_live_server() -> None:
    tools, prompts = await live_server()
    reference, readme = render_reference(tools, prompts), readme_with(render_table(tools))
    stale = [path.name for path, text in ((REFERENCE, reference), (README, readme)) if path.read_text() != text]
    if stale and os.environ.get("UPDATE_SNAPSHOT") == "1":
        REFERENCE.write_text(reference)
        README.write_text(readme)
        pytest.fail(f"rewrote {', '.join(stale)} from the live server: review the diff and run again")
    assert not stale, f"{', '.join(stale)} differ from the live server (see this file's docstring)"


async def test_the_reference_names_every_argument_and_result_field() -> None:
    tools, _ = await live_server()
    reference = REFERENCE.read_text()
    for tool in tools:
        section = reference.split(f"## `{tool['name']}`\n", 1)[1].split("\n## ", 1)[0]
        for schema in (tool["inputSchema"], tool["outputSchema"]):
            for name in schema["properties"]:
                assert f"| `{name}` |" in section, (tool["name"], name)
        assert tool["title"] in section and ("readOnlyHint: " + str(tool["annotations"]["readOnlyHint"]).lower()) in section


def test_a_changed_description_is_caught() -> None:
    """The comparison can fail: one word changed in a description changes the rendered reference."""
    tool = {"name": "t", "title": "T", "description": "Does a thing.", "annotations": {"readOnlyHint": True},
            "inputSchema": {"properties": {"x": {"type": "integer", "minimum": 1, "description": "An x."}}, "required": ["x"]}}
    rendered = render_tool(tool)
    assert "| `x` | integer, >= 1 | yes | An x. |" in rendered
    assert render_tool(tool | {"description": "Does another thing."}) != rendered
