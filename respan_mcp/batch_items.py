"""One item of `upsert_log_scores`, read the same way by the batch and by its dry run.

An item is parsed on its own (its JSON text with a depth bound, so one bad item is invalid
alone), and named by the score it writes: its log with its evaluator's id or slug. Two items
naming the same score are one write, so the later valid item supersedes the earlier one.
"""

from __future__ import annotations

from typing import Any

from respan_mcp.arguments import LogScoreWrite
from respan_mcp.evaluator import Evaluator
from respan_mcp.values import NOT_JSON, read_json_text

Target = tuple[str, str, str]  # (log_id, "id" or "slug", the evaluator's id or slug): one score, by one of its names
SUPERSEDED = (
    "not sent: item {} names the same log and evaluator, and the later item's value is the one kept (one score "
    "per log and evaluator)"
)


def claim(claims: dict[Target, int], replaced_by: dict[int, int], index: int, names: set[Target]) -> set[int]:
    """Item `index`, valid, writes these scores: every earlier item writing one of them (or replaced by one
    that does) is now replaced by it. Returns the items whose replacement changed."""
    earlier = {claims[name] for name in names if name in claims}
    changed = earlier | {item for item, by in replaced_by.items() if by in earlier}
    replaced_by.update(dict.fromkeys(changed, index))
    claims.update(dict.fromkeys(names, index))
    return changed


def targets(item: LogScoreWrite, evaluator: Evaluator | None = None) -> set[Target]:
    """The score an item writes, by every name it goes by: its log with its evaluator's id or slug (the item's
    own, and the evaluator's when it was looked up)."""
    names = {("id", item.evaluator_id), ("slug", item.evaluator_slug)}
    if evaluator is not None:
        names |= {("id", evaluator.id), ("slug", evaluator.slug)}
    return {(item.log_id, kind, value) for kind, value in names if value}


def parse_item(raw: Any) -> LogScoreWrite:
    """One item of `scores` (an object, or its JSON text) as a write; raises ValidationError or ValueError.

    Its JSON text is read with a depth bound, so an item nested too deeply is invalid like any other."""
    if isinstance(raw, str):
        raw = read_json_text(raw, lambda exc: ValueError(f"this item is {exc}: send it as an object with "
                                                         "upsert_log_score's fields"))
        if raw is NOT_JSON:
            raise ValueError("this item is text that is not JSON: send an object with upsert_log_score's fields")
    return LogScoreWrite.model_validate(raw)
