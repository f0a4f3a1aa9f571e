"""What the server tells an agent when it connects: how its tools fit together, and, in the
sandbox, that nothing reaches Respan. Sent once per session, in the initialize answer."""

from __future__ import annotations

from respan_mcp.values import PAIRING_TABLE_TEXT

INSTRUCTIONS = f"""\
Write evaluation scores into Respan. If you do not know an evaluator's type, call list_evaluators
first: it gives each evaluator's value field, range, choices and passing condition; get_evaluator
gives one evaluator whole, with its description and scoring rubric (read it before you grade).
upsert_log_score creates or updates the score a log has for one evaluator (calling it again updates
that score); update_score changes a score by its id; upsert_log_scores writes many at once. With
dry_run: true the writes check everything and show the request they would send and whether the value
would pass, writing nothing. Write results carry is_passed (Respan's verdict) and passing_condition.
get_score and list_log_scores read scores back. find_logs finds the run (by its identifiers, or
current_trace: true for the trace this request belongs to) and get_log reads what it was asked and
answered, with the scores already on it; the self_grade prompt walks you through grading a run,
grade_logs through grading many.
Send exactly one value field, the one the evaluator's score_value_type takes: {PAIRING_TABLE_TEXT}."""

SANDBOX_NOTE = """

This is the respan-mcp sandbox: every call is answered by a stand-in of the Respan API inside the
server, with sample evaluators and traced runs; nothing reaches Respan, and scores written here stay
in the sandbox's file only."""
