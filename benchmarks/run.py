"""respan-mcp against the bare SDK server (`baseline_server.py`), measured in the same run.

Starts the loopback stand-in of the Respan API as its own process, then measures both
servers the way hosts use them: spawned over stdio by the SDK's client (cold start, per-call
latency, the server's CPU per call, resident memory) and served over stateless streamable HTTP
(throughput, CPU per call). Baseline and respan-mcp repetitions are interleaved, figures are
medians, percentiles or totals over many samples, and the table reports ratios: the machine
is shared and noisy, single timings mean nothing.

Server CPU is the kernel's count for the server process alone (utime + stime in
/proc/<pid>/stat, all its threads): read right before its first timed call and right after its
last, so start-up, warm-up and the client's own work are not in it.

    python benchmarks/run.py                 # a few minutes on 2 cores
    python benchmarks/run.py --quick         # smoke run (what the test suite runs)
    python benchmarks/run.py --memory-calls 1000 --json /tmp/results.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "bench-key"
LOG_LEVEL = "WARNING"  # both servers; the SDK's default INFO would log every request
CALL = {"log_id": "log-bench", "evaluator_slug": "bench", "numerical_value": 4}
SERVERS = ("baseline", "ours")


@dataclass
class Figure:
    label: str
    unit: str
    baseline: float | None
    ours: float | None
    target: str = ""
    met: bool | None = None

    @property
    def ratio(self) -> float | None:
        return self.ours / self.baseline if self.ours is not None and self.baseline else None


def command(name: str) -> list[str]:
    """How a host starts each server: the baseline script, and respan-mcp's console script."""
    if name == "baseline":
        return [sys.executable, str(ROOT / "benchmarks" / "baseline_server.py")]
    script = Path(sys.executable).with_name("respan-mcp")
    return [str(script)] if script.exists() else [sys.executable, "-m", "respan_mcp"]


def server_env(api_url: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        "RESPAN_API_KEY": API_KEY,
        "RESPAN_BASE_URL": api_url,
        "RESPAN_LOG_LEVEL": LOG_LEVEL,
    } | ({"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {})


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def interleaved(rep: int, pair: tuple[str, ...] = SERVERS) -> tuple[str, ...]:
    """Alternate which server (or tool) goes first, so neither always runs on a warmer machine."""
    return pair if rep % 2 == 0 else pair[::-1]


@contextmanager
def process(
    args: list[str], env: dict[str, str] | None = None, ready: str | None = None, quiet: bool = False
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A child process, killed on the way out; waits for a line starting with `ready` if given.

    `quiet` drops its stderr: the stand-in logs a traceback for every request a deadline cuts off.
    """
    stderr = subprocess.DEVNULL if quiet else None
    child = subprocess.Popen(args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        line = ""
        if ready is not None:
            assert child.stdout is not None
            line = child.stdout.readline().strip()  # the fake API prints READY at once or exits
            if not line.startswith(ready):
                raise RuntimeError(f"{args[1:]} did not start: {line!r}")
        yield child, line
    finally:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def children() -> set[int]:
    """Pids of this process's children (the stdio servers the SDK client spawned)."""
    me, found = str(os.getpid()), set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if stat.rsplit(")", 1)[1].split()[1] == me:
                found.add(int(entry))
    return found


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory now (VmRSS), or its peak since the process started (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for {pid}")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, every thread) process `pid` itself has used; not its children's.

    Linux keeps this in clock ticks (10 ms), scaled to the process's exact run time, so a
    figure over a whole run of calls is precise to 10 ms; unlike wall time, load hardly moves it.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stdio(name: str, api_url: str) -> Client:
    args = command(name)
    params = StdioServerParameters(command=args[0], args=args[1:], env=server_env(api_url), cwd=ROOT)
    return Client(params, mode="legacy")  # the initialize handshake today's hosts send


async def call(client: Client) -> float:
    start = time.perf_counter()
    result = await client.call_tool("upsert_log_score", CALL)
    elapsed = time.perf_counter() - start
    if result.is_error:
        raise RuntimeError(f"the benchmark call failed: {result.content}")
    return elapsed


async def network_floor(api_url: str, samples: int) -> list[float]:
    """A direct POST of the same score to the same API: what no server can go below."""
    times = []
    headers = {"Authorization": f"Bearer {API_KEY}"}
    body = {k: v for k, v in CALL.items() if k != "log_id"}
    async with httpx2.AsyncClient(base_url=f"{api_url}/api", headers=headers) as http:
        for i in range(samples + 20):
            start = time.perf_counter()
            (await http.post(f"/logs/{CALL['log_id']}/scores/", json=body)).raise_for_status()
            if i >= 20:
                times.append(time.perf_counter() - start)
    return times


async def cold_start(api_url: str, reps: int) -> dict[str, list[float]]:
    """Spawn -> initialize -> tools/list answered, from the client's side; the first round warms caches."""
    times: dict[str, list[float]] = {name: [] for name in SERVERS}
    for rep in range(reps + 1):
        for name in interleaved(rep):
            start = time.perf_counter()
            async with stdio(name, api_url) as client:
                tools = await client.list_tools()
                elapsed = time.perf_counter() - start
            if not any(tool.name == "upsert_log_score" for tool in tools.tools):
                raise RuntimeError(f"{name} has no upsert_log_score tool")
            if rep:
                times[name].append(elapsed)
    return times


async def calls_and_memory(
    api_url: str, calls: int, warmup: int, block: int, memory_calls: int, idle: float
) -> dict[str, Any]:
    """Per-call latency and server CPU over stdio (interleaved blocks after warm-up), RSS as calls add up.

    Each server's CPU is read right before its first timed call and right after its last: the
    window also spans the blocks the other server runs, when this one waits on stdin. That
    waiting is checked to cost nothing (`idle`: both servers' CPU over `idle` seconds with no
    calls), and keeping it in the window counts whatever a server does after writing an answer.
    """
    out: dict[str, Any] = {name: {"latency": [], "rss": {}, "cpu_s": {}} for name in SERVERS}
    async with AsyncExitStack() as stack:
        clients, pids = {}, {}
        for name in SERVERS:
            before = children()
            clients[name] = await stack.enter_async_context(stdio(name, api_url))
            (pid,) = children() - before
            pids[name] = pid
            out[name]["rss"]["start"] = rss_mb(pid)
        done = dict.fromkeys(SERVERS, 0)
        for name in SERVERS:
            for _ in range(warmup):
                await call(clients[name])
            done[name] = warmup
        checkpoints = sorted({calls, memory_calls} - {0})
        rep = 0
        while done["ours"] < checkpoints[-1]:
            for name in interleaved(rep):
                if done[name] == warmup:
                    out[name]["cpu_s"]["first"] = cpu_s(pids[name])
                for _ in range(block):
                    elapsed = await call(clients[name])
                    done[name] += 1
                    if done[name] <= calls:
                        out[name]["latency"].append(elapsed)
                    if done[name] == calls:
                        out[name]["cpu_s"]["last"] = cpu_s(pids[name])
                    if done[name] in checkpoints:
                        out[name]["rss"][done[name]] = rss_mb(pids[name])
            rep += 1
            if rep % 20 == 0:
                await reset_fake(api_url)  # keep the stand-in's request log small
        before_idle = {name: cpu_s(pids[name]) for name in SERVERS}
        await anyio.sleep(idle)
        for name in SERVERS:
            out[name]["cpu_s"]["idle"] = cpu_s(pids[name]) - before_idle[name]
    return out


async def reset_fake(api_url: str) -> None:
    async with httpx2.AsyncClient() as http:
        (await http.post(f"{api_url}/_fake/reset")).raise_for_status()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, child: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if child.poll() is not None:
            raise RuntimeError(f"{child.args} exited with {child.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


async def rate(clients: list[Client], seconds: float) -> tuple[float, int]:
    """Calls a second completed by `clients` calling back to back for `seconds`, and the calls made."""
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    last = start

    async def worker(client: Client) -> None:
        nonlocal count, last
        while time.perf_counter() < deadline:
            await call(client)
            count += 1
        last = max(last, time.perf_counter())

    async with anyio.create_task_group() as group:
        for client in clients:
            group.start_soon(worker, client)
    return count / (last - start), count


async def throughput(api_url: str, concurrency: list[int], seconds: float, reps: int) -> dict[str, Any]:
    """Stateless streamable HTTP, N clients each calling back to back; interleaved, median of reps.

    Also the server's CPU time per call over all of it: on a shared machine calls/s swing with the
    load, CPU per call much less.
    """
    ports = {name: free_port() for name in SERVERS}
    args = {
        "baseline": [*command("baseline"), str(ports["baseline"])],
        "ours": [*command("ours"), "--transport", "streamable-http", "--port", str(ports["ours"])],
    }
    env = server_env(api_url)
    out: dict[str, Any] = {name: {n: [] for n in concurrency} for name in SERVERS}
    cpu = {name: {"seconds": 0.0, "calls": 0} for name in SERVERS}
    with process(args["baseline"], env) as (baseline, _), process(args["ours"], env) as (ours, _):
        wait_for_port(ports["baseline"], baseline)
        wait_for_port(ports["ours"], ours)
        async with AsyncExitStack() as stack:
            clients = {name: [] for name in SERVERS}
            for name in SERVERS:
                for _ in range(max(concurrency)):
                    client = await stack.enter_async_context(Client(f"http://127.0.0.1:{ports[name]}/mcp", mode="legacy"))
                    await call(client)  # warm: connection open, first-call costs paid
                    clients[name].append(client)
            pids = {"baseline": baseline.pid, "ours": ours.pid}
            for rep in range(reps):
                for n in concurrency:
                    for name in interleaved(rep):
                        before = cpu_s(pids[name])
                        calls_per_s, count = await rate(clients[name][:n], seconds)
                        cpu[name]["seconds"] += cpu_s(pids[name]) - before
                        cpu[name]["calls"] += count
                        out[name][n].append(calls_per_s)
                await reset_fake(api_url)
    return out | {"cpu": cpu}


def measure(options: argparse.Namespace, progress: Callable[[str], None]) -> dict[str, Any]:
    fake = [sys.executable, str(ROOT / "tests" / "fake_api.py"), "--port", "0", "--any-log", "--key", API_KEY]
    load_before = os.getloadavg()
    with process(fake, ready="READY") as (_, ready):
        api_url = ready.split()[1]
        progress("network floor")
        floor = anyio.run(network_floor, api_url, options.calls)
        progress(f"cold start ({options.cold_reps} interleaved repetitions)")
        cold = anyio.run(cold_start, api_url, options.cold_reps)
        progress(f"calls over stdio ({options.calls} for latency, RSS up to {options.memory_calls})")
        stdio_runs = anyio.run(
            calls_and_memory, api_url, options.calls, options.warmup, options.block, options.memory_calls, options.idle
        )
        progress(f"streamable HTTP throughput at {options.concurrency} clients")
        http = anyio.run(throughput, api_url, options.concurrency, options.http_seconds, options.http_reps)
    return {
        "floor": floor,
        "cold": cold,
        "stdio": stdio_runs,
        "http": http,
        "load_average": {"before": load_before, "after": os.getloadavg()},
    }


def figures(raw: dict[str, Any], options: argparse.Namespace) -> dict[str, Figure]:
    ms = 1000.0
    cold = {name: statistics.median(raw["cold"][name]) * ms for name in SERVERS}
    latency = {name: raw["stdio"][name]["latency"] for name in SERVERS}
    timed = options.calls - options.warmup
    stdio_cpu = {name: (raw["stdio"][name]["cpu_s"]["last"] - raw["stdio"][name]["cpu_s"]["first"]) / timed for name in SERVERS}
    http_cpu = {name: raw["http"]["cpu"][name]["seconds"] / raw["http"]["cpu"][name]["calls"] for name in SERVERS}
    rss = {name: raw["stdio"][name]["rss"] for name in SERVERS}
    floor = percentile(raw["floor"], 50) * ms
    p50 = {name: percentile(latency[name], 50) * ms for name in SERVERS}
    out = {
        "cold_start_ms": Figure("cold start: spawn to tools/list answered", "ms", cold["baseline"], cold["ours"], "<= 1.10x"),
        "call_p50_ms": Figure("upsert_log_score p50 over stdio", "ms", p50["baseline"], p50["ours"], "<= 1.15x"),
        "call_p99_ms": Figure(
            "upsert_log_score p99 over stdio", "ms", *(percentile(latency[name], 99) * ms for name in SERVERS)
        ),
        "call_cpu_ms": Figure(
            "server CPU per call over stdio", "ms", *(stdio_cpu[name] * ms for name in SERVERS), "<= 1.10x"
        ),
        "idle_cpu_ms": Figure(
            f"server CPU over {options.idle:g} s without calls", "ms",
            *(raw["stdio"][name]["cpu_s"]["idle"] * ms for name in SERVERS),
        ),
        "network_floor_p50_ms": Figure("network floor: direct POST p50", "ms", floor, floor),
        "over_floor_p50_ms": Figure("p50 over the network floor", "ms", *(p50[name] - floor for name in SERVERS)),
        "rss_start_mb": Figure("RSS after start", "MB", rss["baseline"]["start"], rss["ours"]["start"]),
        "rss_calls_mb": Figure(
            f"RSS after {options.calls:,} calls", "MB", rss["baseline"][options.calls], rss["ours"][options.calls], "<= 1.10x"
        ),
    }
    if options.memory_calls > options.calls:
        n = options.memory_calls
        growth = {name: rss[name][n] - rss[name][options.calls] for name in SERVERS}
        out["rss_more_calls_mb"] = Figure(f"RSS after {n:,} calls", "MB", rss["baseline"][n], rss["ours"][n])
        out["rss_growth_mb"] = Figure(
            f"RSS growth {options.calls:,} -> {n:,} calls", "MB", growth["baseline"], growth["ours"], "flat"
        )
        # Flat: no more growth than the bare SDK server shows, within 1 MB of allocator noise.
        out["rss_growth_mb"].met = growth["ours"] <= max(growth["baseline"], 0.0) + 1.0
    for n in options.concurrency:
        rates = {name: statistics.median(raw["http"][name][n]) for name in SERVERS}
        out[f"http_{n}_clients_per_s"] = Figure(
            f"streamable HTTP, {n} client{'s' if n > 1 else ''}", "calls/s", rates["baseline"], rates["ours"], "higher is better"
        )
    out["http_cpu_ms"] = Figure("server CPU per call, streamable HTTP", "ms", *(http_cpu[name] * ms for name in SERVERS))
    for figure in out.values():
        if figure.target.startswith("<= ") and figure.ratio is not None:
            figure.met = figure.ratio <= float(figure.target[3:-1])
    return out


def number(value: float | None) -> str:
    """Two decimals below 10 (CPU per call is a few ms, and a tenth of it matters), one above."""
    if value is None:
        return ""
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def table(results: dict[str, Figure], columns: tuple[str, str] = ("baseline", "respan-mcp")) -> str:
    rows = [("figure", "unit", *columns, "ratio", "target")]
    for figure in results.values():
        ratio = f"{figure.ratio:.2f}x" if figure.ratio is not None else ""
        target = figure.target + {True: " (met)", False: " (MISSED)", None: ""}[figure.met]
        rows.append((figure.label, figure.unit, number(figure.baseline), number(figure.ours), ratio, target.strip()))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(lines)


def script_parser(doc: str, results: str) -> argparse.ArgumentParser:
    """What every benchmark script takes: its docstring's first paragraph as its description, where to
    write its results (`--json`, benchmarks/`results` by default) and a smoke run (`--quick`)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / results, help="where to write the results")
    parser.add_argument("--quick", action="store_true", help="a smoke run: small sizes, numbers not meaningful")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = script_parser(__doc__, "results.json")
    parser.add_argument("--cold-reps", type=int, default=20, help="cold starts of each server (default 20)")
    parser.add_argument("--calls", type=int, default=1000, help="calls per server for latency and RSS (default 1000)")
    parser.add_argument("--warmup", type=int, default=50, help="calls per server before timing (default 50)")
    parser.add_argument("--block", type=int, default=25, help="calls per interleaved block (default 25)")
    parser.add_argument(
        "--memory-calls", type=int, default=10000, help="calls per server before the last RSS reading (default 10000; "
        "at most --calls skips it)"
    )
    parser.add_argument(
        "--concurrency", type=lambda s: [int(n) for n in s.split(",")], default=[1, 8, 32],
        help="streamable HTTP clients, comma-separated (default 1,8,32)",
    )
    parser.add_argument("--http-seconds", type=float, default=2.0, help="seconds per throughput sample (default 2)")
    parser.add_argument("--http-reps", type=int, default=5, help="throughput samples per server and level (default 5)")
    parser.add_argument(
        "--idle", type=float, default=1.0, help="seconds both stdio servers sit without calls, their CPU read (default 1)"
    )
    options = parser.parse_args(argv)
    if options.quick:
        options.cold_reps, options.calls, options.warmup, options.block = 1, 40, 5, 10
        options.memory_calls, options.concurrency, options.http_seconds, options.http_reps = 60, [1, 2], 0.3, 1
        options.idle = 0.1
    if options.calls <= options.warmup:
        parser.error("--calls must be more than --warmup")
    return options


def main(argv: list[str] | None = None) -> None:
    options = parse_args(argv)
    started = time.monotonic()
    raw = measure(options, lambda step: print(f"[{time.monotonic() - started:5.0f} s] {step}", file=sys.stderr, flush=True))
    results = figures(raw, options)
    report = table(results)
    print(report)
    document = {
        "figures": {key: asdict(figure) | {"ratio": figure.ratio} for key, figure in results.items()},
        "table": report,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(options).items()},
        "environment": {
            "python": platform.python_version(),
            "mcp": version("mcp"),
            "cpus": os.cpu_count(),
            "log_level": {"baseline": LOG_LEVEL, "ours": LOG_LEVEL},
            "load_average": raw["load_average"],
            "seconds": round(time.monotonic() - started, 1),
        },
        "samples": {
            "cold_start_s": raw["cold"],
            "http_calls_per_s": {name: raw["http"][name] for name in SERVERS},
            "http_cpu": raw["http"]["cpu"],
            "rss_mb": {name: raw["stdio"][name]["rss"] for name in SERVERS},
            "stdio_cpu_s": {name: raw["stdio"][name]["cpu_s"] for name in SERVERS},
        },
    }
    options.json.parent.mkdir(parents=True, exist_ok=True)
    options.json.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwritten to {options.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
