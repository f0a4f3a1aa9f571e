"""Know the evaluator a score is for, and check the score against it before writing.

Respan describes every platform evaluator (type, range, choices), so a wrong field,
an out-of-range number or an unknown choice can be refused here with a message that
says what to send, instead of coming back from the API as a 400. Lookups are cached
per API key (callers never see each other's evaluators), bounded, and coalesced.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import anyio
from pydantic import Field

from respan_mcp.client import AuthenticationError, MissingAPIKeyError, RespanClient, RespanError, path_segment
from respan_mcp.models import VALUE_FIELD_FOR_TYPE, OutputModel, ScoreValueError, ScoreValues, check_value

logger = logging.getLogger(__name__)

SEARCH_PAGE_SIZE = 100


@dataclass(frozen=True)
class Evaluator:
    """What the server needs to know of a platform evaluator to check a score."""

    id: str
    slug: str | None
    name: str | None
    score_value_type: str | None
    min_score: float | None
    max_score: float | None
    choices: tuple[str, ...] | None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Evaluator:
        config = data.get("score_config") if isinstance(data.get("score_config"), dict) else {}
        legacy = data.get("configurations") if isinstance(data.get("configurations"), dict) else {}
        choices = config.get("choices") or data.get("categorical_choices") or legacy.get("choices")
        return cls(
            id=str(data.get("id")),
            slug=data.get("evaluator_slug") or data.get("slug"),
            name=data.get("name"),
            score_value_type=data.get("score_value_type"),
            min_score=_number(config.get("min_score"), legacy.get("min_score")),
            max_score=_number(config.get("max_score"), legacy.get("max_score")),
            choices=_choice_values(choices),
        )

    @property
    def label(self) -> str:
        return self.slug or self.name or self.id

    @property
    def value_field(self) -> str | None:
        return VALUE_FIELD_FOR_TYPE.get(self.score_value_type or "")

    def describe(self) -> str:
        """E.g. "evaluator 'helpfulness' is numerical (1 to 5)"."""
        detail = ""
        if self.value_field == "numerical_value" and (self.min_score is not None or self.max_score is not None):
            detail = f" ({_bound(self.min_score, 'any')} to {_bound(self.max_score, 'any')})"
        elif self.choices:
            detail = " (choices: " + ", ".join(repr(c) for c in self.choices) + ")"
        return f"evaluator '{self.label}' is {self.score_value_type}{detail}"

    def what_to_send(self) -> str:
        field = self.value_field
        if field == "numerical_value" and (self.min_score is not None or self.max_score is not None):
            return f"send numerical_value between {_bound(self.min_score, 'any')} and {_bound(self.max_score, 'any')}"
        if field == "categorical_value" and self.choices:
            count = "exactly one" if self.score_value_type == "single_select" else "one or more"
            return f"send categorical_value with {count} of " + ", ".join(repr(c) for c in self.choices)
        return f"send {field}"

    def check(self, score: ScoreValues) -> None:
        """Refuse a score this evaluator cannot take; the message names it and what to send."""
        field = self.value_field
        if field is None:  # a type this server does not know yet: leave it to the API
            return
        refuse = f"{self.describe()}: {self.what_to_send()}"
        stated = score.score_value_type
        if stated and VALUE_FIELD_FOR_TYPE[stated] != field:
            raise ScoreValueError(f"score_value_type '{stated}' does not match: {refuse}")
        given = score.value_field()
        if given != field:
            raise ScoreValueError(f"{refuse}, not {given}")
        value = getattr(score, field)
        try:
            check_value(field, value, self.score_value_type)
        except ScoreValueError as exc:
            raise ScoreValueError(f"{refuse} ({exc})") from None
        if field == "numerical_value":
            low, high = self.min_score, self.max_score
            if (low is not None and value < low) or (high is not None and value > high):
                raise ScoreValueError(f"{refuse} (got {value:g})")
        if field == "categorical_value" and self.choices:
            unknown = [v for v in value if v not in self.choices]
            if unknown:
                raise ScoreValueError(f"{refuse} (got {', '.join(repr(v) for v in unknown)})")


def _number(*candidates: Any) -> float | None:
    for value in candidates:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def _bound(value: float | None, missing: str) -> str:
    return missing if value is None else f"{value:g}"


def _choice_values(raw: Any) -> tuple[str, ...] | None:
    """Choices as the strings categorical_value must hold: each choice's `value` (or the string itself)."""
    if not isinstance(raw, list) or not raw:
        return None
    values: list[str] = []
    for choice in raw:
        if isinstance(choice, dict):
            value = choice.get("value", choice.get("name"))
            if value is not None:
                values.append(str(value))
        elif choice is not None:
            values.append(str(choice))
    return tuple(values) or None


class EvaluatorSummary(OutputModel):
    """One evaluator, as list_evaluators returns it: enough to pick the field and a valid value."""

    id: str = Field(description="Evaluator ID; pass it as evaluator_id.")
    evaluator_slug: str | None = Field(None, description="Evaluator slug; pass it as evaluator_slug.")
    name: str | None = Field(None, description="Human-readable name.")
    score_value_type: str | None = Field(None, description="The evaluator's type, e.g. numerical, boolean, single_select.")
    value_field: str | None = Field(None, description="The value field a score for this evaluator must use.")
    min_score: float | None = Field(None, description="Lowest allowed numerical_value, if bounded.")
    max_score: float | None = Field(None, description="Highest allowed numerical_value, if bounded.")
    choices: list[str] | None = Field(None, description="Allowed categorical_value entries, if any.")

    @classmethod
    def of(cls, evaluator: Evaluator) -> EvaluatorSummary:
        return cls(
            id=evaluator.id,
            evaluator_slug=evaluator.slug,
            name=evaluator.name,
            score_value_type=evaluator.score_value_type,
            value_field=evaluator.value_field,
            min_score=evaluator.min_score,
            max_score=evaluator.max_score,
            choices=list(evaluator.choices) if evaluator.choices else None,
        )


class EvaluatorPage(OutputModel):
    """A page of evaluators."""

    count: int = Field(description="How many evaluators match in all.")
    evaluators: list[EvaluatorSummary] = Field(description="This page's evaluators.")
    next_page: int | None = Field(None, description="The page to ask for next, if there are more.")


class EvaluatorCache:
    """Evaluators by id and by slug, per API key, with a TTL and a size bound.

    Concurrent lookups of the same evaluator share one request. A slug that no
    platform evaluator has is cached as None: it is a custom score, checked by the
    core rules only.
    """

    def __init__(self, client: RespanClient, *, ttl: float = 300.0, max_entries: int = 512) -> None:
        self.client = client
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str, str], tuple[float, Evaluator | None]] = OrderedDict()
        self._pending: dict[tuple[str, str, str], _Pending] = {}
        self.lookups = 0  # requests made, for tests and the log

    async def for_write(self, evaluator_id: str | None, slug: str | None, api_key: str | None) -> Evaluator | None:
        """The evaluator a write is for, or None when unknown (custom slug, or the lookup failed)."""
        kind, value = ("id", evaluator_id) if evaluator_id else ("slug", slug)
        if not value:
            return None
        key = (self._key_id(api_key), kind, value)
        cached = self._entries.get(key)
        if cached is not None and cached[0] > time.monotonic():
            self._entries.move_to_end(key)
            return cached[1]
        if key in self._pending:
            return await self._pending[key].wait()
        pending = self._pending[key] = _Pending()
        try:
            evaluator = await self._look_up(kind, value, api_key)
        except (AuthenticationError, MissingAPIKeyError) as exc:
            pending.fail(exc)
            raise
        except RespanError as exc:
            # Never block a write on a lookup: the core rules still apply, and the API has the last word.
            logger.warning("evaluator %s %r could not be looked up (%s); checking with the core rules only", kind, value, exc)
            pending.set(None)
            return None
        finally:
            del self._pending[key]
        self._store(key, evaluator)
        pending.set(evaluator)
        return evaluator

    async def search(self, search: str | None, page: int, page_size: int, api_key: str | None) -> EvaluatorPage:
        params: dict[str, Any] = {"page": page, "page_size": page_size}
        if search:
            params["search"] = search
        data = await self.client.request("GET", "/evaluators/", params=params, api_key=api_key)
        found = [Evaluator.from_api(item) for item in _results(data)]
        key_id = self._key_id(api_key)
        for evaluator in found:  # what an agent just listed, it will likely score with next
            self._store((key_id, "id", evaluator.id), evaluator)
            if evaluator.slug:
                self._store((key_id, "slug", evaluator.slug), evaluator)
        return EvaluatorPage(
            count=data.get("count", len(found)) if isinstance(data, dict) else len(found),
            evaluators=[EvaluatorSummary.of(e) for e in found],
            next_page=page + 1 if isinstance(data, dict) and data.get("next") else None,
        )

    async def _look_up(self, kind: str, value: str, api_key: str | None) -> Evaluator | None:
        self.lookups += 1
        if kind == "id":
            data = await self.client.request(
                "GET", f"/evaluators/{path_segment(value)}/", api_key=api_key, max_retries=0,
                not_found=f"no evaluator has id '{value}'",
            )
            return Evaluator.from_api(data)
        data = await self.client.request(
            "GET", "/evaluators/", params={"search": value, "page_size": SEARCH_PAGE_SIZE}, api_key=api_key, max_retries=0
        )
        for item in _results(data):
            if item.get("evaluator_slug") == value:
                return Evaluator.from_api(item)
        return None

    def _store(self, key: tuple[str, str, str], evaluator: Evaluator | None) -> None:
        self._entries[key] = (time.monotonic() + self.ttl, evaluator)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def _key_id(self, api_key: str | None) -> str:
        """Entries are keyed by a hash of the caller's key, never by the key itself."""
        key = api_key or self.client.config.api_key or ""
        return hashlib.sha256(key.encode()).hexdigest()[:16]


def _results(data: Any) -> list[dict[str, Any]]:
    items = data.get("results", []) if isinstance(data, dict) else data if isinstance(data, list) else []
    return [item for item in items if isinstance(item, dict)]


class _Pending:
    """One in-flight lookup that later callers wait on."""

    def __init__(self) -> None:
        self._done = anyio.Event()
        self._value: Evaluator | None = None
        self._error: BaseException | None = None

    def set(self, value: Evaluator | None) -> None:
        self._value = value
        self._done.set()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._done.set()

    async def wait(self) -> Evaluator | None:
        await self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value
