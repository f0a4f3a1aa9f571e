"""How argument and result models are published and how arguments are read.

The models are the one source of truth; this module turns them into schemas every MCP
host accepts (flat: no `anyOf`, `$ref` or `default: null`) and words pydantic's errors for
an agent. A field whose published type must differ from its Python type (json_value is JSON
text, a batch item is upsert_log_score's arguments) says so with `WithJsonSchema` beside it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import core_schema


class FlatJsonSchema(GenerateJsonSchema):
    """Publish schemas every MCP host accepts.

    Several hosts (Gemini-backed clients, Cursor, older VS Code) reject `anyOf`
    with null, `$ref`/`$defs` and `default: null`. Optional fields are published
    as their plain type and left out of `required`; nested models are inlined.
    Validation still happens in pydantic against the real (nullable) types.
    """

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        json_schema = super().default_schema(schema)
        if json_schema.get("default", ...) is None:
            del json_schema["default"]
        return json_schema

    def generate(self, schema: core_schema.CoreSchema, mode: JsonSchemaMode = "validation") -> JsonSchemaValue:
        json_schema = super().generate(schema, mode=mode)
        definitions = json_schema.pop("$defs", {})
        inlined: JsonSchemaValue = _inline_refs(json_schema, definitions)
        return inlined


def _inline_refs(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            target = definitions[ref.removeprefix("#/$defs/")]
            merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            return _inline_refs(merged, definitions)
        return {key: _inline_refs(value, definitions) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline_refs(item, definitions) for item in node]
    return node


def flat_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The published JSON schema of a model (see `FlatJsonSchema`)."""
    return model.model_json_schema(schema_generator=FlatJsonSchema)


def structured_fields(schema: dict[str, Any]) -> frozenset[str]:
    """The top-level arguments whose published type is an array or an object."""
    properties = schema.get("properties", {})
    return frozenset(name for name, prop in properties.items() if prop.get("type") in ("array", "object"))


def describe_invalid(exc: ValidationError, model: type[BaseModel]) -> str:
    """A pydantic error in plain words, one clause per field, without echoing the values back."""
    problems: list[str] = []
    for error in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in error["loc"]) or "arguments"
        if error["type"] == "extra_forbidden":
            problems.append(f"{field} is not an argument (the arguments are: {', '.join(model.model_fields)})")
        elif error["type"] == "missing":
            problems.append(f"{field} is required")
        else:
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{field}: {message[:1].lower()}{message[1:]}")
    return "invalid arguments: " + "; ".join(problems)
