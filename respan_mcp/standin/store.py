"""Where the stand-in keeps evaluators, logs and scores: one interface, two storages.

`MemoryStore` is the tests' (fast, and its dicts are the live state a test may read or change);
`SqliteStore` (sqlite_store.py) is the sandbox's, which outlives the process and is shared by
several. The behaviour (app.py, scores.py, logs.py) sees only `Store`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

Record = dict[str, Any]


class ScoreKey(NamedTuple):
    """What the upsert is keyed by: one score per (log, evaluator, scorer).

    `evaluator` is the evaluator's id, or the slug of a custom evaluator the platform does not know.
    """

    log_id: str
    evaluator: str
    scorer: str


class Store(Protocol):
    """Every read returns a copy or a record the caller may keep; every write is atomic."""

    def put_evaluator(self, evaluator: Record) -> None: ...

    def get_evaluator(self, evaluator_id: str) -> Record | None: ...

    def list_evaluators(self) -> list[Record]: ...

    def put_log(self, log: Record) -> None: ...

    def get_log(self, unique_id: str) -> Record | None: ...

    def list_logs(self) -> list[Record]: ...

    def upsert_score(self, key: ScoreKey, created: Record, changes: Record) -> tuple[Record, bool]:
        """Store `created` (a whole new score) unless one exists for `key`; then apply `changes` to it.
        Answers the score and whether it was created."""
        ...

    def get_score(self, score_id: str) -> Record | None: ...

    def update_score(self, score_id: str, change: Callable[[Record], Record]) -> Record | None:
        """Replace the score by `change(score)` in one transaction; None when there is no such score."""
        ...

    def delete_score(self, score_id: str) -> bool: ...

    def scores_for_log(self, log_id: str) -> list[Record]:
        """The log's scores, oldest first."""
        ...

    def clear_scores(self) -> None: ...


def public(record: Record) -> Record:
    """A record as the API answers it: without the stand-in's own `_` keys."""
    return {k: v for k, v in record.items() if not k.startswith("_")}


class MemoryStore:
    """Dicts in memory. `scores`, `evaluators` and `logs` are the live state: tests read and change them."""

    def __init__(self) -> None:
        self.scores: dict[str, Record] = {}
        self.evaluators: dict[str, Record] = {}
        self.logs: dict[str, Record] = {}

    def put_evaluator(self, evaluator: Record) -> None:
        self.evaluators[evaluator["id"]] = evaluator

    def get_evaluator(self, evaluator_id: str) -> Record | None:
        return self.evaluators.get(evaluator_id)

    def list_evaluators(self) -> list[Record]:
        return list(self.evaluators.values())

    def put_log(self, log: Record) -> None:
        self.logs[log["unique_id"]] = log

    def get_log(self, unique_id: str) -> Record | None:
        return self.logs.get(unique_id)

    def list_logs(self) -> list[Record]:
        return list(self.logs.values())

    def upsert_score(self, key: ScoreKey, created: Record, changes: Record) -> tuple[Record, bool]:
        # A scan, not an index: tests clear and edit `scores` directly, which an index would not see.
        for score in self.scores.values():
            if ScoreKey(score["log_id"], score["_evaluator_key"], score["scorer"]) == key:
                score.update(changes)
                return score, False
        score = created | {"_evaluator_key": key.evaluator}
        self.scores[score["id"]] = score
        return score, True

    def get_score(self, score_id: str) -> Record | None:
        return self.scores.get(score_id)

    def update_score(self, score_id: str, change: Callable[[Record], Record]) -> Record | None:
        score = self.scores.get(score_id)
        if score is None:
            return None
        score.update(change(dict(score)))
        return score

    def delete_score(self, score_id: str) -> bool:
        return self.scores.pop(score_id, None) is not None

    def scores_for_log(self, log_id: str) -> list[Record]:
        return [score for score in self.scores.values() if score["log_id"] == log_id]

    def clear_scores(self) -> None:
        self.scores.clear()
