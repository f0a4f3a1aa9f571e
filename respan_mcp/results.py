"""Result models: what every tool returns, published as its output schema (the evaluators' views
are `evaluator_results.py`'s), and the API's answer as a result may show it (`readable_answer`).

Parsed leniently where the API is the source (it adds fields over time), and
serialised without nulls (published output schemas are flat, so a missing value
must be absent, never null).
"""

from __future__ import annotations

import math
import unicodedata
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_serializer
from pydantic_core import core_schema

from respan_mcp import evaluator_fields
from respan_mcp.errors import NotAScoreError
from respan_mcp.evaluator import Evaluator
from respan_mcp.evaluator_fields import SHORT_TEXT
from respan_mcp.net import redact_json


def one_line(text: str, limit: int, cut: str = "…") -> str:
    """`text` on one line of at most `limit` characters, safe to set inside other text.

    Line breaks and other control or invisible characters are shown as escapes (a newline as a
    literal \\n), so nothing Respan stores can start a line of its own or hide in what we show; other
    spaces read as a space. A cut ends with `cut`, so nobody takes it for the whole. Escaping looks at
    no more than `limit` characters, whatever the length of `text`.
    """
    flat = text.strip()
    if len(flat) <= limit and flat.isprintable():
        return flat
    shown = "".join(char if char.isprintable() else _escaped(char) for char in flat[:limit])
    if len(flat) <= limit and len(shown) <= limit:
        return shown
    return shown[: limit - len(cut)].rstrip() + cut


def _escaped(char: str) -> str:
    """A character str.isprintable() refuses: a space stays a space, the rest as its escape (\\n, \\x1b, \\u2028)."""
    return " " if unicodedata.category(char) == "Zs" else char.encode("unicode_escape").decode("ascii")


def readable_answer(data: Any, pieces: frozenset[bytes], secrets: tuple[str, ...]) -> Any:
    """The API's parsed answer as a result may show it (its depth already bounded by `prune_json`):
    non-finite numbers (NaN, Infinity, 1e999) as None, so no output schema is failed by a number JSON
    cannot carry, and every piece of a key cut out of its text, so an answer that echoes the key shows
    none of it. The client runs it on every answer; `pieces` are the caller's (`net.Caller`).

    One redaction check over all its strings at once keeps the common answer cheap."""
    strings: list[str] = []
    data = _finite(data, strings)
    if pieces and strings and _holds_a_piece(strings, pieces):
        data = redact_json(data, secrets)
    return data


REDACTION_BATCH = 2**20  # characters checked in one go: a whole common answer, a huge one a part at a time


def _holds_a_piece(strings: list[str], pieces: frozenset[bytes]) -> bool:
    """Whether any of `strings` holds one of `pieces` (lower case, UTF-8), ASCII letters matched in either case.

    Checked as UTF-8 lowered by `bytes.lower`, which lowers ASCII letters only, as `net.ASCII_LOWER` does, but
    at memory speed (`str.translate` goes character by character through text that is not ASCII: seconds
    for a log of tens of MB); a text holds a piece exactly when its UTF-8 holds the piece's. The strings
    go in parts of about REDACTION_BATCH characters, so a large answer is never copied whole."""
    start, size = 0, 0
    for end, text in enumerate(strings, 1):
        size += len(text)
        if size >= REDACTION_BATCH or end == len(strings):
            haystack = "\0".join(strings[start:end]).encode("utf-8", "surrogatepass").lower()
            if any(piece in haystack for piece in pieces):
                return True
            start, size = end, 0
    return False


def _finite(value: Any, strings: list[str]) -> Any:
    if isinstance(value, str):
        strings.append(value)
    elif isinstance(value, float):
        return value if math.isfinite(value) else None
    elif isinstance(value, dict):
        strings.extend(value)
        return {name: _finite(item, strings) for name, item in value.items()}
    elif isinstance(value, list):
        return [_finite(item, strings) for item in value]
    return value


class OutputModel(BaseModel):
    """Base of every tool result: null fields are left out of the output."""

    @model_serializer(mode="wrap")
    def _drop_nulls(self, handler: core_schema.SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {key: value for key, value in handler(self).items() if value is not None}


class ScoreRange(OutputModel):
    """Where numerical_value may lie; either end may be open."""

    min: float | None = Field(None, description="Lowest allowed numerical_value, if bounded below.")
    max: float | None = Field(None, description="Highest allowed numerical_value, if bounded above.")

    @property
    def bounded(self) -> bool:
        return self.min is not None or self.max is not None




class Score(OutputModel):
    """A score as the API returns it.

    Parsed leniently: the API adds fields over time, so unknown ones are kept and
    everything but `id` may be missing.
    """

    model_config = ConfigDict(extra="allow")

    id: str = Field(description="Score ID; pass it to update_score as score_id.")
    created_at: str | None = Field(None, description="When the score was created (ISO 8601).")
    type: str | None = Field(None, description="How the score was produced, e.g. llm, human, code, custom.")
    environment: str | None = Field(None, description="Environment the score belongs to.")
    numerical_value: float | None = Field(None, description="Numeric value, if the score has one.")
    boolean_value: bool | None = Field(None, description="Boolean value, if the score has one.")
    categorical_value: list[str] | None = Field(None, description="Chosen option(s), if the score has them.")
    string_value: str | None = Field(None, description="Text value, if the score has one.")
    json_value: str | None = Field(None, description="JSON value as text, if the score has one.")
    is_passed: bool | None = Field(None, description="Whether the score passes the evaluator's conditions.")
    passing_condition: str | None = Field(
        None, description="When a score for this evaluator passes, e.g. 'numerical_value >= 3', if it says."
    )
    cost: float | None = Field(None, description="Evaluation cost in USD, when known.")
    evaluator_id: str | None = Field(None, description="Evaluator ID.")
    evaluator_slug: str | None = Field(None, description="Evaluator slug.")
    evaluator_name: str | None = Field(None, description="Evaluator name.")
    scorer: str | None = Field(None, description="Who or what produced the score.")
    log_id: str | None = Field(None, description="The scored log's ID.")
    prompt_id: str | None = Field(None, description="Associated prompt ID.")
    prompt_version_number: int | None = Field(None, description="Associated prompt version.")
    dataset_id: str | None = Field(None, description="Associated dataset ID.")
    automation_id: str | None = Field(None, description="Associated automation ID.")
    status: str | None = Field(None, description="Evaluation status.")
    error_message: str | None = Field(None, description="Evaluation error message.")
    inputs: dict[str, Any] | None = Field(None, description="Evaluator inputs stored with the score.")
    evaluator: dict[str, Any] | None = Field(None, description="Evaluator metadata, when it is a platform evaluator.")
    evaluator_range: ScoreRange | None = Field(
        None, description="The evaluator's range for numerical_value, when bounded (to draw the value against)."
    )
    evaluator_choices: list[str] | None = Field(
        None, description="The values categorical_value may hold for this evaluator, when it has choices."
    )

    @field_validator("evaluator_slug", "evaluator_name", mode="before")
    @classmethod
    def _evaluator_words(cls, value: Any) -> str | None:
        """The evaluator's words, read as an evaluator's are: text, bounded, or absent (an odd evaluator's
        name must not make a stored score unreadable). A short printable one, the usual, is taken as it is."""
        if isinstance(value, str) and len(value) <= SHORT_TEXT and value.isprintable():
            return value
        return evaluator_fields.line(value)

    @field_validator("evaluator", mode="before")
    @classmethod
    def _evaluator_summary(cls, value: Any) -> Any:
        """The evaluator's metadata as Respan gives it, each long text in it cut as an evaluator's would be."""
        if not isinstance(value, dict):
            return value
        long = [k for k, v in value.items() if isinstance(v, str) and len(v) > SHORT_TEXT]
        return value | {k: evaluator_fields.cut(value[k], SHORT_TEXT) for k in long} if long else value

    def about(self, evaluator: Evaluator | None) -> Self:
        """This score with what its evaluator says about it: passing condition, range, choices (a copy)."""
        if evaluator is None:
            return self
        limits = ScoreRange(min=evaluator.min_score, max=evaluator.max_score)
        return self.model_copy(
            update={
                "passing_condition": evaluator.condition_text(),
                "evaluator_range": limits if evaluator.value_field == "numerical_value" and limits.bounded else None,
                "evaluator_choices": list(evaluator.choices) if evaluator.choices else None,
            }
        )

    @classmethod
    def from_answer(cls, answer: Any, *, wrote: bool = False) -> Self:
        """The API's answer as a Score; NotAScoreError, worded once here, when it is not one.

        After a write the message says the write went through, so the agent does not send it
        again for the wrong reason (reading back with list_log_scores is safe).
        """
        try:
            if not isinstance(answer, dict):
                raise NotAScoreError(f"answer: a {type(answer).__name__}, not an object")
            if not isinstance(answer.get("id"), str) or not answer["id"]:
                raise NotAScoreError("id: not a score id (a non-empty string)")
            return cls.model_validate(answer)
        except (NotAScoreError, ValidationError) as exc:
            problems = str(exc) if isinstance(exc, NotAScoreError) else "; ".join(
                f"{'.'.join(str(part) for part in error['loc'])}: {error['msg'][:1].lower()}{error['msg'][1:]}"
                for error in exc.errors(include_url=False, include_input=False)[:3]
            )
            happened = (
                "Respan accepted the write (it answered with success), so it happened, but its answer is not a score"
                if wrote
                else "The Respan API's answer is not a score"
            )
            raise NotAScoreError(
                f"{happened} ({problems}); list_log_scores shows what was stored. Check that RESPAN_BASE_URL points "
                "at the Respan API."
            ) from None




class ScorePage(OutputModel):
    """A page of a log's scores."""

    count: int = Field(description="How many scores the log has in all.")
    scores: list[Score] = Field(description="This page's scores.")
    next_page: int | None = Field(None, description="The page to ask for next, if there are more.")

    @classmethod
    def from_api(cls, data: Any, page: int) -> ScorePage:
        """A DRF page (`{count, next, previous, results}`), read leniently: a score that cannot be read is left out."""
        page_data = data if isinstance(data, dict) else {}
        results = page_data.get("results")
        scores: list[Score] = []
        for item in results if isinstance(results, list) else []:
            try:
                scores.append(Score.from_answer(item))
            except NotAScoreError:
                continue
        count = page_data.get("count")
        return cls(
            count=count if isinstance(count, int) and not isinstance(count, bool) and count >= 0 else len(scores),
            scores=scores,
            next_page=page + 1 if page_data.get("next") else None,
        )


class PlannedRequest(OutputModel):
    """A request exactly as it would reach Respan."""

    method: str = Field(description="HTTP method, POST or PATCH.")
    path: str = Field(description="Request path, ids percent-encoded as sent, e.g. /api/logs/log_1/scores/.")
    body: dict[str, Any] = Field(description="JSON body, as it would be sent.")


class DryRun(OutputModel):
    """What a write would do, found without writing: the request, and whether the value would pass."""

    request: PlannedRequest = Field(description="The request that would be sent.")
    would_pass: bool | None = Field(
        None, description="Whether the value would pass the evaluator's condition; absent when that is unknown."
    )
    passing_condition: str | None = Field(None, description="The evaluator's passing condition, in words.")


class WriteResult(Score):
    """What upsert_log_score and update_score return: the stored score, or on a dry run what would be sent."""

    id: str | None = Field(  # type: ignore[assignment]
        None, description="Score ID (absent on a dry run); pass it to update_score as score_id."
    )
    dry_run: DryRun | None = Field(
        None, description="Only on a dry run: nothing was written; this is the request that would have been."
    )


BatchStatus = Literal["written", "valid", "invalid", "failed", "deferred", "superseded"]


class ItemResult(OutputModel):
    index: int = Field(description="Position of the item in `scores`, from 0.")
    status: BatchStatus = Field(
        description="written, invalid (never sent), failed, deferred (send it again), or superseded (never sent: a "
        "later item names the same log and evaluator, and its value is kept); on a dry run valid, invalid or "
        "superseded (nothing is sent)."
    )
    score: Score | None = Field(None, description="The stored score, when written.")
    error: str | None = Field(
        None,
        description="What went wrong and what to do, when not written; on a written item without score, why its "
        "answer could not be shown (the write happened).",
    )
    dry_run: DryRun | None = Field(None, description="On a dry run, for a valid item: the request that would be sent.")


class BatchResult(OutputModel):
    results: list[ItemResult] = Field(description="One entry per input item, in input order.")
    written: int = Field(description="Items written.")
    invalid: int = Field(description="Items refused before sending; fix them as their error says.")
    failed: int = Field(description="Items the API refused or that failed for good.")
    deferred: int = Field(description="Items not written by the deadline; send them again.")
    superseded: int | None = Field(
        None, description="Items not sent because a later item names the same log and evaluator (when any)."
    )
    retry_after_seconds: float | None = Field(None, description="When to send the deferred items again.")
    next_step: str | None = Field(None, description="What to do next, when anything is deferred (or on a dry run).")
    valid: int | None = Field(None, description="Only on a dry run: items that passed every check; nothing was written.")

    @property
    def is_error(self) -> bool:
        """The call failed only when nothing could be written (or, on a dry run, nothing would be) and nothing
        is left to send again."""
        if self.valid is not None:
            return self.valid == 0 and self.deferred == 0
        return self.written == 0 and self.deferred == 0
