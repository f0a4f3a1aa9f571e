"""What a platform evaluator allows a score to be, and the check against it.

Agents rarely know an evaluator's type, range or choices; Respan describes them, so a
wrong field, an out-of-range number or an unknown choice is refused before the write
with a message that names the evaluator and says what to send. The value-type table
and the core value rules stay in `models.py`; this adds only what the evaluator says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from respan_mcp.models import PERCENTAGE_RANGE, VALUE_FIELD_FOR_TYPE, ScoreValueError, ScoreValues, check_value


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
        score_value_type = data.get("score_value_type")
        # A percentage is 0 to 100 even when the evaluator does not say so.
        low, high = PERCENTAGE_RANGE if score_value_type == "percentage" else (None, None)
        return cls(
            id=str(data.get("id") or ""),
            slug=data.get("evaluator_slug") or data.get("slug"),
            name=data.get("name"),
            score_value_type=score_value_type if isinstance(score_value_type, str) else None,
            min_score=_number(config.get("min_score"), legacy.get("min_score"), low),
            max_score=_number(config.get("max_score"), legacy.get("max_score"), high),
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
        if self.value_field == "numerical_value" and self._range():
            detail = f" ({self._range(' to ')})"
        elif self.choices:
            detail = " (choices: " + ", ".join(repr(c) for c in self.choices) + ")"
        return f"evaluator '{self.label}' is {self.score_value_type}{detail}"

    def what_to_send(self) -> str:
        field = self.value_field
        if field == "numerical_value" and self._range():
            return f"send numerical_value {self._range(' and ', 'between ')}"
        if field == "categorical_value" and self.choices:
            count = "exactly one" if self.score_value_type == "single_select" else "one or more"
            return f"send categorical_value with {count} of " + ", ".join(repr(c) for c in self.choices)
        return f"send {field}"

    def _range(self, joiner: str = " to ", both: str = "") -> str:
        """"1 to 5" (or "between 1 and 5"), "at least 1", "at most 5", or "" when unbounded."""
        low, high = self.min_score, self.max_score
        if low is not None and high is not None:
            return f"{both}{low:g}{joiner}{high:g}"
        return f"at least {low:g}" if low is not None else f"at most {high:g}" if high is not None else ""

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
