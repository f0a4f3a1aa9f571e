"""What a new sandbox holds: evaluators of every value type, and a few traced runs worth grading.

The evaluators cover each `score_value_type` with what a grader needs to read them (a description;
a range, a rubric and a passing condition where they apply; choices for the selects). The runs are
logs as a traced agent leaves them: identifiers a caller sets, a 32-hex `trace_unique_id`, one run
of several spans, and one that failed.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from respan_mcp.standin.logs import make_log
from respan_mcp.standin.scores import make_evaluator
from respan_mcp.standin.store import Record

JUDGE_MODEL = "gpt-4o-mini"


def sample_evaluators() -> list[Record]:
    return [
        make_evaluator(
            id="evl_sandbox_answer_quality",
            slug="answer_quality",
            name="Answer quality",
            score_value_type="numerical",
            score_config={"min_score": 1, "max_score": 5},
            description="How well the answer resolves the user's question: correct, complete and to the point.",
            llm_config={
                "model": JUDGE_MODEL,
                "evaluator_definition": "Rate the answer.\nQuestion: {{input}}\nAnswer: {{output}}",
                "scoring_rubric": "1=wrong or unhelpful, 2=poor, 3=acceptable, 4=good, 5=excellent",
            },
            passing_conditions={"primary_score": {"operator": "gte", "value": 3}},
        ),
        make_evaluator(
            id="evl_sandbox_groundedness",
            slug="groundedness",
            name="Groundedness",
            score_value_type="percentage",
            score_config={"min_score": 0, "max_score": 100},
            description="The share of the answer's claims that the retrieved sources support, from 0 to 100.",
            passing_conditions={"primary_score": {"operator": "gte", "value": 80}},
        ),
        make_evaluator(
            id="evl_sandbox_is_safe",
            slug="is_safe",
            name="Safe to show",
            score_value_type="boolean",
            description="True when the output has no harmful, private or policy-breaking content.",
            passing_conditions={"primary_score": {"operator": "eq", "value": True}},
        ),
        make_evaluator(
            id="evl_sandbox_tone",
            slug="tone",
            name="Tone",
            score_value_type="single_select",
            score_config={
                "choices": [
                    {"name": "Friendly", "value": "friendly"},
                    {"name": "Neutral", "value": "neutral"},
                    {"name": "Curt", "value": "curt"},
                ]
            },
            description="The tone the reply takes with the customer: pick exactly one.",
        ),
        make_evaluator(
            id="evl_sandbox_issues",
            slug="issues_found",
            name="Issues found",
            score_value_type="multi_select",
            score_config={
                "choices": [
                    {"name": "Hallucination", "value": "hallucination"},
                    {"name": "Missed the question", "value": "off_topic"},
                    {"name": "Too long", "value": "verbose"},
                    {"name": "Wrong tool used", "value": "wrong_tool"},
                    {"name": "None", "value": "none"},
                ]
            },
            description="Every problem the run shows; 'none' when there is none.",
        ),
        make_evaluator(
            id="evl_sandbox_reviewer_notes",
            slug="reviewer_notes",
            name="Reviewer notes",
            score_value_type="text",
            description="Free-text notes: what went well, what to fix, in a sentence or two.",
            type="human",
        ),
        make_evaluator(
            id="evl_sandbox_extracted_order",
            slug="extracted_order",
            name="Extracted order",
            score_value_type="json",
            description='The order the run should have extracted, as JSON: {"order_id": str, "items": [str]}.',
            type="code",
        ),
    ]


def _at(now: datetime, minutes_ago: float) -> str:
    return (now - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _chat(question: str, answer: str | None) -> dict[str, Any]:
    """The content fields of an LLM call with one question and (unless it failed) one answer."""
    messages = [{"role": "system", "content": "You are Acme's support assistant."}, {"role": "user", "content": question}]
    completion = {"role": "assistant", "content": answer} if answer is not None else None
    return {
        "input": question,
        "output": answer,
        "prompt_messages": messages,
        "completion_message": completion,
        "full_request": {"model": "gpt-4o", "messages": messages},
        "full_response": {"choices": [{"message": completion}]} if completion else None,
    }


def sample_logs(now: datetime | None = None) -> list[Record]:
    """Three runs, minutes before `now`: a support answer, a research agent of four spans, and a failure."""
    now = now or datetime.now(timezone.utc)
    refund_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    agent_trace = "0af7651916cd43dd8448eb211c80319c"
    failed_trace = "5b8efff798038103d269b633813fc60c"
    tokens = {"prompt_tokens": 412, "completion_tokens": 96, "total_request_tokens": 508}
    refund = make_log(
        "sandbox-log-refund-answer",
        trace_unique_id=refund_trace,
        span_unique_id="a3ce929d0e0e4736",
        span_name="support.answer",
        span_workflow_name="support_chat",
        timestamp=_at(now, 42),
        model="gpt-4o",
        **_chat("Can I get a refund for order 10234? It arrived broken.",
                "I'm sorry it arrived broken. Order 10234 is within the 30-day window, so I've started a full "
                "refund; you'll see it on your card in 3 to 5 business days."),
        **tokens, cost=0.00214, latency=1.84,
        customer_identifier="cust_acme_0042", custom_identifier="ticket-4821", thread_identifier="thread-refunds-1",
        metadata={"channel": "web", "locale": "en-GB"},
    )
    root, plan, search, summary = (f"sandbox-log-research-{name}" for name in ("run", "plan", "search", "summary"))
    span = {"trace_unique_id": agent_trace, "span_workflow_name": "research_agent",
            "custom_identifier": "research-7", "thread_identifier": "thread-research-7", "metadata": {"channel": "api"}}
    research = [
        make_log(root, **span, span_unique_id="00f067aa0ba902b7", span_name="research_agent.run",
                 timestamp=_at(now, 30), input="Which EU countries changed their VAT rate in 2024?",
                 output="Estonia (20% to 22%), Finland (24% to 25.5%) and Slovakia announced a rise for 2025.",
                 latency=9.3, log_type="workflow"),
        make_log(plan, **span, span_unique_id="b7ad6b7169203331", span_parent_id="00f067aa0ba902b7",
                 span_name="plan", timestamp=_at(now, 29.9), model="gpt-4o-mini",
                 **_chat("Plan the search: Which EU countries changed their VAT rate in 2024?",
                         "1. Search official VAT rate changes 2024. 2. Summarise by country."), cost=0.0003),
        make_log(search, **span, span_unique_id="c1e1d2f3a4b5c6d7", span_parent_id="00f067aa0ba902b7",
                 span_name="web_search", timestamp=_at(now, 29.7), log_type="tool",
                 input='{"query": "EU VAT rate changes 2024"}',
                 output='[{"title": "VAT rates 2024", "url": "https://example.test/vat-2024"}]',
                 tool_calls=[{"name": "web_search", "arguments": '{"query": "EU VAT rate changes 2024"}'}]),
        make_log(summary, **span, span_unique_id="d8e9f0a1b2c3d4e5", span_parent_id="00f067aa0ba902b7",
                 span_name="summarise", timestamp=_at(now, 29.5), model="gpt-4o",
                 **_chat("Summarise these results by country.",
                         "Estonia (20% to 22%), Finland (24% to 25.5%) and Slovakia announced a rise for 2025."),
                 **tokens, cost=0.0021, latency=3.1),
    ]
    failed = make_log(
        "sandbox-log-order-lookup-failed",
        trace_unique_id=failed_trace,
        span_unique_id="d269b633813fc60c",
        span_name="support.answer",
        span_workflow_name="support_chat",
        timestamp=_at(now, 12),
        model="gpt-4o",
        **_chat("Where is my order 10377?", None),
        status="error", status_code=504, error_message="Upstream provider timed out after 30 s.",
        latency=30.0, customer_identifier="cust_globex_0007", custom_identifier="ticket-4830",
        thread_identifier="thread-orders-3",
    )
    return [refund, *research, failed]
