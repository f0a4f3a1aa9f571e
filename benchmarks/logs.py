"""get_log against get_score over stdio, and the server's memory while it reads a 30 MB log.

Two measurements of respan-mcp, spawned over stdio by the SDK's client the way a host spawns it:

1. Latency: get_log on an ordinary log (a few kB of input and output, two scores) against
   get_score on one of its scores, in interleaved blocks after warm-up, in one session. Reading
   a log should cost about what reading a score does: target p50 within 1.15x. Also each tool's
   server CPU per call (the kernel's count for the server process, read around each block),
   which the load moves far less than wall time.
2. Memory: a fresh server per repetition answers get_log on a log whose input and output total
   30 MB (a whole request with its context, and its response). Its peak resident memory (VmHWM
   in /proc/<pid>/status, since it started) must stay under 250 MB, and the answer the agent gets
   under 200 kB.

The stand-in of the API runs as its own process (this script with --serve-api) holding both logs,
so serving 30 MB costs the server nothing but the reading: only the server's memory is measured.

    python benchmarks/logs.py                # about a minute on 2 cores
    python benchmarks/logs.py --quick        # smoke run (what the test suite runs)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.types import CallToolResult

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (  # noqa: E402
    API_KEY,
    ROOT,
    Figure,
    children,
    cpu_s,
    interleaved,
    percentile,
    process,
    rss_mb,
    script_parser,
    stdio,
    table,
)

ORDINARY, BIG = "log-ordinary", "log-30mb"
EVALUATORS = ("helpfulness", "correctness")
PEAK_TARGET_MB, ANSWER_TARGET_KB = 250.0, 200.0
# Prose as a model writes it, typographic punctuation included: one non-ASCII character makes
# Python hold a whole string at 2 bytes a character, which the memory figure must not leave out.
PARAGRAPH = (
    "The customer asked why the invoice for March was higher than February\u2019s. The assistant checked the "
    "usage records \u2014 three more seats and the annual support plan \u2014 and explained each line, then offered "
    "to split the support charge over twelve months. \u201cThat works,\u201d the customer replied.\n\n"
)


def text(chars: int) -> str:
    return (PARAGRAPH * (chars // len(PARAGRAPH) + 1))[:chars]


def ordinary_log() -> dict[str, Any]:
    """What most logs are: a system prompt, a question, an answer; a few kB in all."""
    return {
        "input": [{"role": "system", "content": text(1500)}, {"role": "user", "content": text(600)}],
        "output": text(1800),
        "model": "gpt-4o-mini",
        "span_name": "support.answer",
        "trace_unique_id": "trace-bench",
        "custom_identifier": "ticket-4711",
        "metadata": {"customer_plan": "team", "channel": "email"},
        "prompt_tokens": 512, "completion_tokens": 410, "total_request_tokens": 922, "cost": 0.0004, "latency": 1.9,
    }


def big_log(megabytes: float) -> dict[str, Any]:
    """Input and output totalling `megabytes` MB: a long context in messages, and a long answer."""
    half = int(megabytes * 1_000_000) // 2
    chunk = 250_000
    messages = [{"role": "system", "content": text(2000)}]
    messages += [{"role": "user", "content": text(chunk)} for _ in range(half // chunk)]
    return ordinary_log() | {"input": messages, "output": text(half)}


def serve_api(megabytes: float) -> None:
    """The stand-in, holding the ordinary log and the big one, until SIGTERM; prints READY <url>."""
    sys.path.insert(0, str(ROOT))
    from tests.fake_api import FakeRespan, RunningFakeRespan

    fake = FakeRespan([API_KEY])
    fake.add_log(ORDINARY, **ordinary_log())
    fake.add_log(BIG, **big_log(megabytes))
    for n, slug in enumerate(EVALUATORS):
        fake.add_evaluator(id=f"ev-{n}", slug=slug, name=slug.title(), score_value_type="numerical")
    with RunningFakeRespan(fake) as running:
        print(f"READY {running.url}", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        stop.wait()


async def seed_scores(api_url: str) -> list[str]:
    """Two scores on each log, written straight to the stand-in; the ids of the ordinary log's."""
    ids = []
    async with httpx2.AsyncClient(base_url=f"{api_url}/api", headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        for log_id in (ORDINARY, BIG):
            for n, slug in enumerate(EVALUATORS):
                body = {"evaluator_slug": slug, "numerical_value": 3 + n}
                answer = (await http.post(f"/logs/{log_id}/scores/", json=body)).raise_for_status().json()
                if log_id == ORDINARY:
                    ids.append(answer["id"])
    return ids


async def timed(client: Client, tool: str, arguments: dict[str, Any]) -> tuple[float, CallToolResult]:
    """Seconds the call took, and its result."""
    start = time.perf_counter()
    result = await client.call_tool(tool, arguments)
    elapsed = time.perf_counter() - start
    if result.is_error or result.structured_content is None:
        raise RuntimeError(f"{tool} failed: {result.content}")
    return elapsed, result


def size_of(result: CallToolResult) -> int:
    """The answer's size as the client got it, in bytes (its structured content and its text)."""
    return len(result.model_dump_json(by_alias=True, exclude_none=True).encode())


async def latency(api_url: str, score_id: str, calls: int, warmup: int, block: int) -> dict[str, Any]:
    """get_log and get_score in interleaved blocks in one session; latencies and server CPU per tool."""
    tools = {"get_score": {"score_id": score_id}, "get_log": {"log_id": ORDINARY}}
    out: dict[str, Any] = {tool: {"latency": [], "cpu_s": 0.0} for tool in tools}
    before_spawn = children()
    async with stdio("ours", api_url) as client:
        (pid,) = children() - before_spawn
        first = {tool: (await timed(client, tool, arguments))[1] for tool, arguments in tools.items()}
        for tool, result in first.items():
            out[tool]["answer_bytes"] = size_of(result)
        detail = first["get_log"].structured_content or {}
        if len(detail.get("scores") or []) != len(EVALUATORS) or not detail.get("input"):
            raise RuntimeError(f"get_log did not show the ordinary log with its scores: {detail}")
        for tool, arguments in tools.items():
            for _ in range(warmup):
                await timed(client, tool, arguments)
        rep = 0
        while len(out["get_log"]["latency"]) < calls:
            for tool in interleaved(rep, tuple(tools)):
                before = cpu_s(pid)
                for _ in range(block):
                    out[tool]["latency"].append((await timed(client, tool, tools[tool]))[0])
                out[tool]["cpu_s"] += cpu_s(pid) - before
            rep += 1
    return out


async def direct_gets(api_url: str, score_id: str, samples: int) -> dict[str, list[float]]:
    """The ordinary log and the score read straight from the stand-in, interleaved: what no server can go below."""
    paths = {"get_score": f"/scores/{score_id}/", "get_log": f"/request-logs/{ORDINARY}/"}
    times: dict[str, list[float]] = {tool: [] for tool in paths}
    async with httpx2.AsyncClient(base_url=f"{api_url}/api", headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        for i in range(samples + 20):
            for tool in interleaved(i, tuple(paths)):
                start = time.perf_counter()
                (await http.get(paths[tool])).raise_for_status()
                if i >= 20:
                    times[tool].append(time.perf_counter() - start)
    return times


async def big_read(api_url: str) -> dict[str, Any]:
    """A fresh server answers get_log on the big log once: its peak RSS before and after, and the answer."""
    before_spawn = children()
    async with stdio("ours", api_url) as client:
        (pid,) = children() - before_spawn
        await timed(client, "get_log", {"log_id": ORDINARY})  # the call path warm, as in any session
        before = rss_mb(pid, "VmHWM")
        elapsed, result = await timed(client, "get_log", {"log_id": BIG})
        after = {"peak_mb": rss_mb(pid, "VmHWM"), "rss_mb": rss_mb(pid)}
    size, detail = size_of(result), result.structured_content or {}
    if not detail.get("cut") or not detail.get("output"):
        raise RuntimeError(f"get_log did not cut the big log: {str(detail)[:500]}")
    return {"peak_before_mb": before, "seconds": elapsed, "answer_bytes": size} | after


async def direct_get(api_url: str) -> tuple[float, int]:
    """The big log read straight from the stand-in: what no server can go below, and its size."""
    async with httpx2.AsyncClient(base_url=f"{api_url}/api", headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        start = time.perf_counter()
        answer = (await http.get(f"/request-logs/{BIG}/")).raise_for_status()
        return time.perf_counter() - start, len(answer.content)


def figures(raw: dict[str, Any], options: argparse.Namespace) -> dict[str, Figure]:
    ms = 1000.0
    lat = raw["latency"]
    p50 = {tool: percentile(lat[tool]["latency"], 50) * ms for tool in lat}
    p99 = {tool: percentile(lat[tool]["latency"], 99) * ms for tool in lat}
    cpu = {tool: lat[tool]["cpu_s"] / len(lat[tool]["latency"]) * ms for tool in lat}
    floor = {tool: percentile(raw["floor"][tool], 50) * ms for tool in lat}
    big = raw["big"]
    peak = max(run["peak_mb"] for run in big)
    answer_kb = max(run["answer_bytes"] for run in big) / 1000
    out = {
        "get_log_p50_ms": Figure("get_log p50 over stdio, ordinary log (reference: get_score)", "ms",
                                 p50["get_score"], p50["get_log"], "<= 1.15x"),
        "get_log_p99_ms": Figure("get_log p99 over stdio (reference: get_score)", "ms", p99["get_score"], p99["get_log"]),
        "floor_p50_ms": Figure("direct GET p50: the log (reference: the score)", "ms", floor["get_score"], floor["get_log"]),
        "over_floor_p50_ms": Figure("get_log p50 over its direct GET (reference: get_score's)", "ms",
                                    p50["get_score"] - floor["get_score"], p50["get_log"] - floor["get_log"]),
        "get_log_cpu_ms": Figure("server CPU per call, get_log (reference: get_score)", "ms", cpu["get_score"], cpu["get_log"]),
        "get_log_answer_kb": Figure("get_log answer, ordinary log (reference: get_score's)", "kB",
                                    lat["get_score"]["answer_bytes"] / 1000, lat["get_log"]["answer_bytes"] / 1000),
        "big_peak_rss_mb": Figure(f"peak RSS reading a {options.big_mb:g} MB log (reference: peak before it)", "MB",
                                  max(run["peak_before_mb"] for run in big), peak, f"< {PEAK_TARGET_MB:g} MB"),
        "big_rss_after_mb": Figure("RSS after that call", "MB", None, max(run["rss_mb"] for run in big)),
        "big_answer_kb": Figure(f"get_log answer on the {options.big_mb:g} MB log (reference: the API's answer)", "kB",
                                raw["direct"]["bytes"] / 1000, answer_kb, f"< {ANSWER_TARGET_KB:g} kB"),
        "big_seconds": Figure(f"get_log on the {options.big_mb:g} MB log (reference: a direct GET)", "s",
                              raw["direct"]["seconds"], sorted(run["seconds"] for run in big)[len(big) // 2]),
    }
    out["get_log_p50_ms"].met = out["get_log_p50_ms"].ratio is not None and out["get_log_p50_ms"].ratio <= 1.15
    out["big_peak_rss_mb"].met = peak < PEAK_TARGET_MB
    out["big_answer_kb"].met = answer_kb < ANSWER_TARGET_KB
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = script_parser(__doc__, "results-logs.json")
    parser.add_argument("--calls", type=int, default=1000, help="timed calls of each tool (default 1000)")
    parser.add_argument("--warmup", type=int, default=50, help="calls of each tool before timing (default 50)")
    parser.add_argument("--block", type=int, default=25, help="calls per interleaved block (default 25)")
    parser.add_argument("--big-mb", type=float, default=30.0, help="the big log's input and output, MB (default 30)")
    parser.add_argument("--big-reps", type=int, default=3, help="fresh servers reading the big log (default 3)")
    parser.add_argument("--serve-api", action="store_true", help=argparse.SUPPRESS)  # the stand-in's own process
    options = parser.parse_args(argv)
    if options.quick:
        options.calls, options.warmup, options.block, options.big_mb, options.big_reps = 20, 2, 5, 1.0, 1
    return options


def main(argv: list[str] | None = None) -> None:
    options = parse_args(argv)
    if options.serve_api:
        serve_api(options.big_mb)
        return
    started = time.monotonic()

    def progress(step: str) -> None:
        print(f"[{time.monotonic() - started:5.0f} s] {step}", file=sys.stderr, flush=True)

    api = [sys.executable, str(Path(__file__).resolve()), "--serve-api", "--big-mb", str(options.big_mb)]
    load_before = os.getloadavg()
    with process(api, ready="READY") as (_, ready):
        api_url = ready.split()[1]
        score_id = anyio.run(seed_scores, api_url)[0]
        progress("direct GETs of the log and the score")
        floor = anyio.run(direct_gets, api_url, score_id, options.calls)
        progress(f"get_log and get_score over stdio ({options.calls} timed calls each)")
        lat = anyio.run(latency, api_url, score_id, options.calls, options.warmup, options.block)
        progress(f"get_log on a {options.big_mb:g} MB log ({options.big_reps} fresh servers)")
        seconds, size = anyio.run(direct_get, api_url)
        big = [anyio.run(big_read, api_url) for _ in range(options.big_reps)]
    raw = {"latency": lat, "floor": floor, "big": big, "direct": {"seconds": seconds, "bytes": size}}
    results = figures(raw, options)
    report = table(results, ("reference", "respan-mcp"))
    print(report)
    document = {
        "figures": {key: vars(figure) | {"ratio": figure.ratio} for key, figure in results.items()},
        "table": report,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(options).items()},
        "environment": {"load_average": {"before": load_before, "after": os.getloadavg()},
                        "seconds": round(time.monotonic() - started, 1)},
        "samples": {"latency_s": {tool: lat[tool]["latency"] for tool in lat}, "direct_get_s": floor, "big": big},
    }
    options.json.parent.mkdir(parents=True, exist_ok=True)
    options.json.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwritten to {options.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
