"""upsert_log_scores through the MCP client against the loopback API: validation per item,
a shared back-off on 429, a deadline it never outlives, and key errors that stop the batch.

The engine itself (`write_batch`) is also driven directly on a virtual clock, so waits, deadlines
and shutdowns are checked to the (virtual) second without any wall-clock time or window.
"""

from __future__ import annotations

import heapq
import itertools
import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client

from respan_mcp import client as routes
from respan_mcp.arguments import LogScoreWrite
from respan_mcp.batch import write_batch
from respan_mcp.batch_report import MARGIN, ranges
from respan_mcp.client import RespanClient
from respan_mcp.config import Config
from respan_mcp.evaluator_cache import EvaluatorCache
from respan_mcp.net import Caller
from respan_mcp.retry import RetryPolicy
from respan_mcp.server import build_server
from respan_mcp.tools import Call
from respan_mcp.writes import PreparedWrite
from tests.conftest import API_KEY
from tests.evaluator_sets import any_log_and_helpfulness, batch_settings
from tests.fake_api import FakeRespan, RunningFakeRespan
from tests.unit.test_models import assert_flat

pytestmark = pytest.mark.anyio

RATE_LIMITED = {"detail": "Rate limit exceeded", "retry_after": 30}


fake = pytest.fixture(any_log_and_helpfulness, name="fake")  # any log is known; one numerical evaluator
mcp_settings = pytest.fixture(batch_settings, name="mcp_settings")


def items(count: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"log_id": f"log-{i}", "evaluator_slug": "helpfulness", "numerical_value": 1 + i % 5} | extra for i in range(count)]


def stored_once(fake: FakeRespan, count: int) -> None:
    keys = [(s["log_id"], s["evaluator_slug"]) for s in fake.scores.values()]
    assert len(keys) == len(set(keys)) == count


async def test_schema_is_flat_with_items_inline(mcp: Client) -> None:
    tool = next(t for t in (await mcp.list_tools()).tools if t.name == "upsert_log_scores")
    assert_flat(tool.input_schema)
    assert_flat(tool.output_schema)
    item = tool.input_schema["properties"]["scores"]["items"]
    assert item["type"] == "object" and {"log_id", "evaluator_slug", "numerical_value"} <= set(item["properties"])
    assert tool.input_schema["properties"]["scores"]["maxItems"] == 500


async def test_one_invalid_item_among_twenty(mcp: Client, fake: FakeRespan) -> None:
    scores = items(20)
    scores[7] = {"log_id": "log-7", "evaluator_slug": "helpfulness", "boolean_value": True}
    result = await mcp.call_tool("upsert_log_scores", {"scores": scores})
    assert not result.is_error, result.content
    summary = result.structured_content
    assert (summary["written"], summary["invalid"], summary["failed"], summary["deferred"]) == (19, 1, 0, 0)
    assert [r["index"] for r in summary["results"]] == list(range(20))
    bad = summary["results"][7]
    assert bad["status"] == "invalid" and "send numerical_value between 1 and 5, not boolean_value" in bad["error"]
    assert "/api/logs/log-7/scores/" not in [w.path for w in fake.writes()]
    stored_once(fake, 19)
    assert summary["results"][0]["score"]["numerical_value"] == 1


async def test_invalid_items_of_every_kind_are_reported_and_never_sent(mcp: Client, fake: FakeRespan) -> None:
    scores = [
        {"log_id": "a", "evaluator_slug": "helpfulness", "numerical_value": 9},  # out of the evaluator's range
        {"log_id": "b", "evaluator_slug": "custom", "numerical_value": 1, "boolean_value": True},  # two values
        {"log_id": "c", "evaluator_slug": "custom", "numerical_value": "high"},  # wrong type
        {"log_id": "d", "evaluator_slug": "custom", "colour": "red", "numerical_value": 1},  # unknown field
        "not an object",
        {"log_id": "e", "evaluator_slug": "custom", "string_value": "fine"},
    ]
    result = await mcp.call_tool("upsert_log_scores", {"scores": scores})
    statuses = [r["status"] for r in result.structured_content["results"]]
    assert statuses == ["invalid"] * 5 + ["written"]
    assert "(got 9)" in result.structured_content["results"][0]["error"]
    assert [w.path for w in fake.writes()] == ["/api/logs/e/scores/"]


async def test_scores_sent_as_json_text_are_accepted(mcp: Client, fake: FakeRespan) -> None:
    import json

    result = await mcp.call_tool("upsert_log_scores", {"scores": json.dumps(items(3))})
    assert not result.is_error and result.structured_content["written"] == 3


async def test_a_429_slows_the_batch_and_everything_is_stored_once(mcp: Client, fake: FakeRespan) -> None:
    await mcp.call_tool("list_evaluators", {"search": "helpfulness"})  # so the 429 below meets a write
    fake.fail_next(429, {"detail": "Rate limit exceeded", "retry_after": 1}, headers={"Retry-After": "1"})
    result = await mcp.call_tool("upsert_log_scores", {"scores": items(10), "deadline_seconds": 20})
    assert not result.is_error, result.content
    assert result.structured_content["written"] == 10
    assert len(fake.writes()) == 11  # the refused one, sent again once
    stored_once(fake, 10)


async def test_deadline_defers_and_the_follow_up_stores_each_once(mcp: Client, fake: FakeRespan) -> None:
    await mcp.call_tool("list_evaluators", {"search": "helpfulness"})
    fake.fail_next(429, RATE_LIMITED, headers={"Retry-After": "30"}, times=1000)
    with anyio.fail_after(60):  # a failure bound only; that no batch outlives its deadline is test_engine_*'s
        result = await mcp.call_tool("upsert_log_scores", {"scores": items(12), "deadline_seconds": 5})
    summary = result.structured_content
    assert not result.is_error  # deferred is not a failure
    assert summary["deferred"] == 12 and summary["written"] == 0 and fake.scores == {}
    assert 25 <= summary["retry_after_seconds"] <= 30
    assert summary["next_step"].startswith("call upsert_log_scores again with the 12 deferred items after")
    assert all(r["status"] == "deferred" and "safe" in r["error"] for r in summary["results"])

    fake.reset()  # the limit lifts
    deferred = [items(12)[r["index"]] for r in summary["results"] if r["status"] == "deferred"]
    again = await mcp.call_tool("upsert_log_scores", {"scores": deferred})
    assert again.structured_content["written"] == 12
    stored_once(fake, 12)


async def test_a_401_stops_the_batch(fake: FakeRespan, api: RunningFakeRespan) -> None:
    config = Config(api_key="revoked-key", base_url=api.url, max_concurrency=4)
    async with Client(build_server(config)) as client:
        result = await client.call_tool("upsert_log_scores", {"scores": items(30)})
    assert result.is_error
    summary = result.structured_content
    assert summary["failed"] == 30 and len(summary["results"]) == 30
    assert all("rejected the API key" in r["error"] for r in summary["results"])
    assert len(fake.requests) <= 4 and "revoked-key" not in str(summary)


async def test_a_404_fails_only_its_item(fake: FakeRespan, api: RunningFakeRespan) -> None:
    strict = FakeRespan(api_keys=(API_KEY,))
    strict.add_log("known")
    with RunningFakeRespan(strict) as other:
        async with Client(build_server(Config(api_key=API_KEY, base_url=other.url))) as client:
            scores = [{"log_id": "known", "evaluator_slug": "x", "boolean_value": True},
                      {"log_id": "unknown", "evaluator_slug": "x", "boolean_value": True}]
            result = await client.call_tool("upsert_log_scores", {"scores": scores})
    assert [r["status"] for r in result.structured_content["results"]] == ["written", "failed"]
    assert "Log not found" in result.structured_content["results"][1]["error"]


async def test_progress_is_reported(mcp: Client) -> None:
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))

    await mcp.call_tool("upsert_log_scores", {"scores": items(5)}, progress_callback=on_progress)
    assert seen and seen[-1] == (5, 5)


@pytest.mark.parametrize("scores, message", [([], "scores"), (items(501), "scores")])
async def test_batch_size_is_bounded(mcp: Client, fake: FakeRespan, scores: list, message: str) -> None:
    result = await mcp.call_tool("upsert_log_scores", {"scores": scores})
    assert result.is_error and message in result.content[0].text
    assert fake.writes() == []


def test_index_ranges_stay_short() -> None:
    assert ranges([0, 1, 2, 5, 7, 8]) == "0-2, 5, 7-8"
    assert ranges([4]) == "4"


# -- the engine on a virtual clock --------------------------------------------------------------------


class VirtualClock:
    """Time that moves only when every task is waiting: no wall-clock time passes, and the order of wake-ups holds.

    `drive()` runs beside the code under test; whenever all other tasks are blocked, it jumps to
    the earliest sleeper's wake-up time and wakes it. A cancelled sleep is forgotten.
    """

    def __init__(self) -> None:
        self.time = 0.0
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._order = itertools.count()
        self._someone = anyio.Event()

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        entry = (self.time + max(0.0, seconds), next(self._order), anyio.Event())
        heapq.heappush(self._sleepers, entry)
        self._someone.set()
        try:
            await entry[2].wait()
        finally:
            if not entry[2].is_set():  # cancelled: its wake-up time must not move the clock
                self._sleepers.remove(entry)
                heapq.heapify(self._sleepers)

    async def drive(self) -> None:
        while True:
            if not self._sleepers:
                self._someone = anyio.Event()
                await self._someone.wait()
            await anyio.wait_all_tasks_blocked()
            if self._sleepers:
                wake, _, event = heapq.heappop(self._sleepers)
                self.time = max(self.time, wake)
                event.set()


Answer = httpx2.Response | Callable[[], Awaitable[httpx2.Response]]


class StandIn:
    """The score API for the engine: `answer(log_id, try_number)` decides each write's answer.

    Each answer comes `latency` virtual seconds after the request arrives; `arrivals` records when.
    """

    def __init__(self, clock: VirtualClock, answer: Callable[[str, int], Answer], latency: float = 0.1) -> None:
        self.clock, self.answer, self.latency = clock, answer, latency
        self.arrivals: list[tuple[float, str, str]] = []  # (time, log_id, authorization)

    async def handle(self, request: httpx2.Request) -> httpx2.Response:
        log_id = request.url.path.split("/")[3]
        tries = sum(1 for _, seen, _ in self.arrivals if seen == log_id) + 1
        self.arrivals.append((self.clock.now(), log_id, request.headers["authorization"]))
        await self.clock.sleep(self.latency)
        answer = self.answer(log_id, tries)
        return answer if isinstance(answer, httpx2.Response) else await answer()


def stored(log_id: str, tries: int = 1) -> httpx2.Response:
    return httpx2.Response(201, json={"id": f"score-{log_id}", "created_at": "2026-11-24T00:00:00Z", "log_id": log_id})


def engine(answer: Callable[[str, int], Answer] = stored, latency: float = 0.1) -> tuple[RespanClient, StandIn, VirtualClock]:
    clock = VirtualClock()
    api = StandIn(clock, answer, latency)
    policy = RetryPolicy(attempts=3, random=lambda: 0.5)  # waits of 0.25 s then 0.5 s
    client = RespanClient(Config(api_key=API_KEY), transport=httpx2.MockTransport(api.handle), retry=policy, clock=clock)
    return client, api, clock


async def unchecked(item: LogScoreWrite) -> PreparedWrite:
    """The item prepared by the core rules alone (no evaluator lookup)."""
    field, value = item.checked_value()
    body = item.model_dump(mode="json", exclude_none=True, include={"evaluator_id", "evaluator_slug"}) | {field: value}
    return PreparedWrite(routes.upsert_log_score(item.log_id, body), field, None)


async def run(client: RespanClient, scores: list[Any], **options: Any) -> Any:
    """write_batch with the clock driven; options override deadline 45, 4 in flight, the server's key."""
    settings: dict[str, Any] = {"api_key": None, "deadline": 45.0, "max_in_flight": 4} | options
    key = settings.pop("api_key")
    config = Config(api_key=API_KEY, max_concurrency=settings.pop("max_in_flight"))
    caller = Caller(key, (key, API_KEY)) if key else Caller(API_KEY, (API_KEY,))
    call = Call(
        config,
        client,
        EvaluatorCache(client, ttl=300),
        caller,
        settings.pop("progress", None),
        settings.pop("shutting_down", None),
    )
    clock = client.clock
    assert isinstance(clock, VirtualClock)
    async with anyio.create_task_group() as group:
        group.start_soon(clock.drive)
        with anyio.fail_after(60):  # a failure bound only: on the virtual clock the engine takes no real time
            result = await write_batch(call, scores, prepare=unchecked, **settings)
        group.cancel_scope.cancel()
    return result


def statuses(result: Any) -> list[str]:
    return [r.status for r in result.results]


async def test_engine_a_429_pauses_every_worker_for_the_time_asked() -> None:
    def answer(log_id: str, tries: int) -> Answer:
        if log_id == "log-0" and tries == 1:
            return httpx2.Response(429, json=RATE_LIMITED | {"retry_after": 10})
        return stored(log_id)

    client, api, clock = engine(answer)
    result = await run(client, items(8), max_in_flight=3)
    assert result.written == 8 and len(api.arrivals) == 9
    first_wave = [when for when, _, _ in api.arrivals[:3]]
    assert first_wave == [0.0, 0.0, 0.0]
    # Once the 429 came back (at 0.1 s), no worker sent anything until the 10 s Respan asked for had passed.
    assert all(when >= 10.1 for when, _, _ in api.arrivals[3:])
    assert [log for _, log, _ in api.arrivals].count("log-0") == 2


async def test_engine_a_429_without_a_wait_backs_off_by_the_policy() -> None:
    client, api, clock = engine(lambda log_id, tries: httpx2.Response(429, text="slow") if tries == 1 else stored(log_id))
    result = await run(client, items(1))
    assert result.written == 1 and [when for when, _, _ in api.arrivals] == [0.0, 0.1 + 0.25]


async def test_engine_a_5xx_is_retried_per_item_by_the_policy() -> None:
    def answer(log_id: str, tries: int) -> Answer:
        if log_id == "log-1" and tries < 3:
            return httpx2.Response(503, json={"detail": "busy"})
        if log_id == "log-2":
            return httpx2.Response(500, json={"detail": "broken"})
        return stored(log_id)

    client, api, clock = engine(answer)
    result = await run(client, items(4), max_in_flight=1)
    assert statuses(result) == ["written", "written", "failed", "written"]
    tries = [log for _, log, _ in api.arrivals]
    assert tries.count("log-1") == 3 and tries.count("log-2") == 3  # the policy's 3 attempts
    assert "500" in result.results[2].error and "broken" in result.results[2].error


async def test_engine_answers_that_are_not_scores_are_written_alone_saying_so() -> None:
    answers = {
        "log-0": httpx2.Response(201, json={"id": 123}),
        "log-1": httpx2.Response(201, json={"id": "s1", "numerical_value": "high"}),
        "log-2": httpx2.Response(204),
        "log-3": httpx2.Response(200, json=["not", "a", "score"]),
        "log-4": httpx2.Response(201, content=b"<html>ok</html>"),
    }
    client, api, clock = engine(lambda log_id, tries: answers.get(log_id) or stored(log_id))
    result = await run(client, items(7))
    # Respan answered each with success: the write happened, whatever the answer holds.
    assert statuses(result) == ["written"] * 7
    assert (result.written, result.failed, result.deferred) == (7, 0, 0)
    for spoiled in result.results[:4]:
        assert spoiled.score is None and "so it happened" in spoiled.error and "not a score" in spoiled.error
    assert "not JSON" in result.results[4].error and "went through" in result.results[4].error
    assert "id:" in result.results[0].error and "numerical_value:" in result.results[1].error
    assert all(r.score is not None and r.error is None for r in result.results[5:])
    assert len(api.arrivals) == 7  # none of them was sent twice


@pytest.mark.parametrize("in_flight", [1, 4])
async def test_engine_a_tiny_deadline_still_writes_an_item_every_call(in_flight: int) -> None:
    client, api, clock = engine(latency=0.5)
    pending = items(5)
    calls = 0
    while pending:
        calls += 1
        assert calls <= 5, "a call wrote nothing: calling again would loop forever"
        result = await run(client, pending, deadline=0.01, max_in_flight=in_flight)
        assert result.written >= 1 and result.failed == 0
        pending = [pending[r.index] for r in result.results if r.status == "deferred"]
    assert len({log for _, log, _ in api.arrivals}) == 5


async def test_engine_never_outlives_its_deadline_and_says_when_to_come_back() -> None:
    client, api, clock = engine(lambda log_id, tries: httpx2.Response(429, json=RATE_LIMITED, headers={"Retry-After": "30"}))
    result = await run(client, items(12), deadline=5)
    assert clock.now() <= 5
    assert result.deferred == 12 and result.written == 0 and not any(r.error is None for r in result.results)
    assert 25 <= result.retry_after_seconds <= 30
    assert result.next_step.startswith("call upsert_log_scores again with the 12 deferred items after")


async def test_engine_cuts_writes_in_flight_at_the_deadline() -> None:
    client, api, clock = engine(latency=2.0)
    result = await run(client, items(20), deadline=5, max_in_flight=2)
    assert clock.now() == pytest.approx(5 - MARGIN)
    assert result.written == 4 and result.deferred == 16  # two waves of two came back, by 4 s
    cut = [r for r in result.results if r.status == "deferred" and "cut off at the deadline" in r.error]
    assert len(cut) == 2  # the third wave, sent at 4 s, was still in flight


def shutdown_on(written: int, event: anyio.Event, clock: VirtualClock, when: list[float]) -> Callable[..., Any]:
    async def progress(done: int, total: int) -> None:
        if done == written and not event.is_set():
            when.append(clock.now())
            event.set()

    return progress


async def test_engine_returns_soon_after_shutdown_with_the_rest_deferred() -> None:
    client, api, clock = engine(latency=1.0)
    event, when = anyio.Event(), list[float]()
    result = await run(client, items(20), max_in_flight=2, shutting_down=event, grace=3.0,
                       progress=shutdown_on(1, event, clock, when))
    (asked,) = when
    assert clock.now() <= asked + 3.0 - MARGIN
    assert not any(at > asked for at, _, _ in api.arrivals)  # nothing new was sent after the signal
    assert result.written == 2 and result.deferred == 18  # the write in flight was let finish
    assert all("shutting down" in r.error for r in result.results if r.status == "deferred")
    assert "shutting down" in result.next_step and "0-1" not in result.next_step


async def test_engine_cuts_a_hung_write_at_the_end_of_the_grace() -> None:
    def answer(log_id: str, tries: int) -> Answer:
        async def never() -> httpx2.Response:
            await anyio.sleep_forever()
            raise AssertionError

        return stored(log_id) if log_id == "log-0" else never

    client, api, clock = engine(answer, latency=1.0)
    event, when = anyio.Event(), list[float]()
    result = await run(client, items(3), max_in_flight=2, shutting_down=event, grace=3.0,
                       progress=shutdown_on(1, event, clock, when))
    assert clock.now() == pytest.approx(when[0] + 3.0 - MARGIN)
    assert statuses(result) == ["written", "deferred", "deferred"]
    assert "its request was cut off" in result.results[1].error


async def test_engine_shutdown_ends_a_rate_limit_pause_at_once() -> None:
    client, api, clock = engine(lambda log_id, tries: httpx2.Response(429, json=RATE_LIMITED | {"retry_after": 20}))
    event = anyio.Event()

    async def signal_at(seconds: float) -> None:
        await clock.sleep(seconds)
        event.set()

    async with anyio.create_task_group() as group:
        group.start_soon(signal_at, 3.0)
        result = await run(client, items(4), max_in_flight=2, shutting_down=event, grace=10.0)
    assert clock.now() == 3.0 and result.deferred == 4 and len(api.arrivals) == 2


async def test_engine_already_shutting_down_sends_nothing() -> None:
    client, api, clock = engine()
    event = anyio.Event()
    event.set()
    result = await run(client, items(5), shutting_down=event)
    assert api.arrivals == [] and result.deferred == 5 and clock.now() == 0


async def test_engine_a_refused_key_stops_the_batch() -> None:
    client, api, clock = engine(lambda log_id, tries: httpx2.Response(401, json={"detail": "Invalid API key."}))
    result = await run(client, items(30), max_in_flight=4)
    assert result.failed == 30 and len(api.arrivals) <= 4
    assert all("rejected the API key" in r.error for r in result.results)


async def test_engine_item_errors_never_show_the_key() -> None:
    caller = "rk-CALLER-0f9e8d7c6b5a4"
    echoed = {"numerical_value": [f"bad for token {caller[4:]}"], "detail": f"Bearer {caller.upper()}"}
    client, api, clock = engine(lambda log_id, tries: httpx2.Response(400, json=echoed))
    result = await run(client, items(3), api_key=caller)
    assert api.arrivals[0][2] == f"Bearer {caller}"
    text = json.dumps(result.model_dump(mode="json")).lower()
    assert result.failed == 3
    for start in range(len(caller) - 7):
        assert caller[start : start + 8].lower() not in text


async def test_engine_a_403_on_a_write_stops_the_batch_with_its_own_message() -> None:
    client, api, clock = engine(lambda log_id, tries: httpx2.Response(403, json={"detail": "No permission."}))
    result = await run(client, items(30), max_in_flight=4)
    assert result.failed == 30 and len(api.arrivals) <= 4
    assert all("not allowed to do this" in r.error and "rejected" not in r.error for r in result.results)
