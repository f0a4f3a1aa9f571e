"""upsert_log_scores against one upsert_log_score call per score, and a batch under Respan's rate limit.

Two measurements of respan-mcp over stdio, each against its own loopback stand-in of the API:

1. Speed-up: 100 scores in one upsert_log_scores call against 100 upsert_log_score calls made
   one after another (what an agent does without the batch tool), the API taking 20 ms a
   request. Repetitions are interleaved; the ratio is of medians.
2. Rate limit: 500 scores against an API allowing 60 requests a minute. The agent does what
   the tool's answer says: waits `retry_after_seconds`, then sends the deferred items again,
   until every score is written. Reported: calls made, total time, and the longest call
   against its deadline (the default, 45 s). Takes about 8 minutes: 500 writes at 60 a minute.

    python benchmarks/batch.py                   # both, about 9 minutes
    python benchmarks/batch.py --skip-rate-limit # the speed-up only, under a minute
    python benchmarks/batch.py --quick           # smoke run (what the test suite runs)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import API_KEY, ROOT, process, script_parser, stdio  # noqa: E402  (the sibling script's helpers)

DEFAULT_DEADLINE = 45.0  # the server's default deadline_seconds (RESPAN_BATCH_DEADLINE)


def scores(count: int, offset: int = 0) -> list[dict[str, Any]]:
    """Distinct logs, so every item is its own score at the API."""
    return [{"log_id": f"log-batch-{offset + i}", "evaluator_slug": "bench", "numerical_value": i % 5} for i in range(count)]


def fake_api(latency: float, rate_limit: int | None) -> list[str]:
    args = [sys.executable, str(ROOT / "tests" / "fake_api.py"), "--port", "0", "--any-log", "--key", API_KEY]
    args += ["--latency", str(latency)]
    return args + (["--rate-limit", str(rate_limit)] if rate_limit else [])


async def stored(api_url: str) -> int:
    """Scores the stand-in holds: what actually reached the API."""
    async with httpx2.AsyncClient() as http:
        return (await http.get(f"{api_url}/_fake/state")).raise_for_status().json()["scores"]


async def singles(client: Client, items: list[dict[str, Any]]) -> float:
    start = time.perf_counter()
    for item in items:
        result = await client.call_tool("upsert_log_score", item)
        if result.is_error:
            raise RuntimeError(f"upsert_log_score failed: {result.content}")
    return time.perf_counter() - start


async def one_batch(client: Client, items: list[dict[str, Any]]) -> float:
    start = time.perf_counter()
    result = await client.call_tool("upsert_log_scores", {"scores": items})
    elapsed = time.perf_counter() - start
    answer = result.structured_content or {}
    if result.is_error or answer.get("written") != len(items):
        raise RuntimeError(f"upsert_log_scores did not write every item: {result.content}")
    return elapsed


async def speedup(api_url: str, items: int, reps: int) -> dict[str, list[float]]:
    """Interleaved repetitions of both ways of writing `items` scores, in one warm session."""
    times: dict[str, list[float]] = {"singles": [], "batch": []}
    batch = scores(items)
    async with stdio("ours", api_url) as client:
        await singles(client, batch[:5])  # warm: pool open, evaluator looked up
        await one_batch(client, batch[:5])
        for rep in range(reps):
            order = ("singles", "batch") if rep % 2 == 0 else ("batch", "singles")
            for way in order:
                times[way].append(await (singles if way == "singles" else one_batch)(client, batch))
    return times


async def until_written(api_url: str, items: int, deadline: float | None) -> dict[str, Any]:
    """An agent following the tool's answers: resend what is deferred, after the wait it names."""
    pending = scores(items)
    calls: list[dict[str, Any]] = []
    start = time.perf_counter()
    async with stdio("ours", api_url) as client:
        while pending:
            arguments: dict[str, Any] = {"scores": pending}
            if deadline is not None:
                arguments["deadline_seconds"] = deadline
            began = time.perf_counter()
            result = await client.call_tool("upsert_log_scores", arguments, read_timeout_seconds=MAX_WAIT)
            took = time.perf_counter() - began
            answer = result.structured_content or {}
            if result.is_error or answer.get("failed") or answer.get("invalid"):
                raise RuntimeError(f"upsert_log_scores failed: {result.content}")
            deferred = [pending[r["index"]] for r in answer["results"] if r["status"] == "deferred"]
            wait = answer.get("retry_after_seconds") or 0.0
            calls.append({"items": len(pending), "written": answer["written"], "seconds": took, "then_waited": wait})
            if not answer["written"] and len(calls) >= 3 and not any(c["written"] for c in calls[-3:]):
                raise RuntimeError("three calls in a row wrote nothing")
            pending = deferred
            if pending and wait:
                await anyio.sleep(wait)
    total = time.perf_counter() - start
    return {"calls": calls, "total_seconds": total, "stored": await stored(api_url)}


MAX_WAIT = 700.0  # the client-side timeout: far past any deadline, so a late answer is measured, not cut


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = script_parser(__doc__, "results-batch.json")
    parser.add_argument("--items", type=int, default=100, help="scores in the speed-up comparison (default 100)")
    parser.add_argument("--reps", type=int, default=5, help="interleaved repetitions of the comparison (default 5)")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds the API takes a request (default 0.02)")
    parser.add_argument("--rate-items", type=int, default=500, help="scores in the rate-limited batch (default 500)")
    parser.add_argument("--rate-limit", type=int, default=60, help="API requests allowed a minute (default 60)")
    parser.add_argument("--rate-latency", type=float, default=0.02, help="seconds a request takes in that run (default 0.02)")
    parser.add_argument("--deadline", type=float, default=None, help="deadline_seconds to send (default: the server's, 45)")
    parser.add_argument("--skip-rate-limit", action="store_true", help="measure the speed-up only")
    options = parser.parse_args(argv)
    if options.quick:
        # No rate limit in the smoke run (the stand-in's window is a minute); a short deadline and a
        # slow API make calls end with deferred items instead, so the resend loop still runs.
        # 48 items at 16 in flight are 3 rounds of 0.2 s: more than the 0.75 s a 1 s deadline leaves.
        options.items, options.reps, options.rate_items, options.rate_limit = 10, 1, 48, 0
        options.latency, options.rate_latency, options.deadline = 0.02, 0.2, 1.0
    return options


def main(argv: list[str] | None = None) -> None:
    options = parse_args(argv)
    with process(fake_api(options.latency, None), ready="READY") as (_, ready):
        times = anyio.run(speedup, ready.split()[1], options.items, options.reps)
    medians = {way: statistics.median(samples) for way, samples in times.items()}
    ratio = medians["singles"] / medians["batch"]
    lines = [
        "| figure | value |",
        "|---|---|",
        f"| {options.items} upsert_log_score calls, one after another (API {options.latency * 1000:g} ms a request) "
        f"| {medians['singles'] * 1000:.0f} ms |",
        f"| one upsert_log_scores call with the same {options.items} scores | {medians['batch'] * 1000:.0f} ms |",
        f"| speed-up (target >= 5x) | {ratio:.1f}x ({'met' if ratio >= 5 else 'MISSED'}) |",
    ]
    document: dict[str, Any] = {"speedup": {"ratio": ratio, "median_seconds": medians, "samples": times}}
    if not options.skip_rate_limit:
        limit = options.rate_limit or None
        with process(fake_api(options.rate_latency, limit), ready="READY", quiet=True) as (_, ready):
            run = anyio.run(until_written, ready.split()[1], options.rate_items, options.deadline)
        deadline = options.deadline or DEFAULT_DEADLINE
        longest = max(call["seconds"] for call in run["calls"])
        if run["stored"] != options.rate_items:
            raise RuntimeError(f"{run['stored']} of {options.rate_items} scores reached the API")
        limit_text = f"{options.rate_limit} requests a minute" if limit else "no rate limit"
        lines += [
            f"| {options.rate_items} scores, API allowing {limit_text}: total time until all written "
            f"| {run['total_seconds']:.0f} s |",
            f"| upsert_log_scores calls made (each resending the deferred items) | {len(run['calls'])} |",
            f"| longest call against its deadline ({deadline:g} s) | {longest:.1f} s "
            f"({'every call within it' if longest <= deadline else 'MISSED'}) |",
        ]
        document["rate_limited"] = run | {"deadline_seconds": deadline, "longest_call_seconds": longest}
    report = "\n".join(lines)
    print(report)
    document["table"] = report
    document["settings"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(options).items()}
    options.json.parent.mkdir(parents=True, exist_ok=True)
    options.json.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwritten to {options.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
