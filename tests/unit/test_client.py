"""RespanClient, its retry policy and Config against mocked transports and loopback stand-ins:
what is sent, how failures read, what is retried, and that no answer can hold a call or its memory."""

from __future__ import annotations

import html
import json
import socket
import threading
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote, quote_plus

import anyio
import httpx2
import pytest

from respan_mcp import client as routes
from respan_mcp.answers import parse_retry_after
from respan_mcp.client import MAX_ANSWER, RespanClient, path_segment
from respan_mcp.config import DEFAULT_BASE_URL, Config, load_config, normalise_base_url
from respan_mcp.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConnectionSetupError,
    InternalServerError,
    InvalidKeyError,
    InvalidRequestError,
    KeyUnusableError,
    MissingAPIKeyError,
    NotFoundError,
    RateLimitError,
    RedirectError,
    UnexpectedAnswerError,
    redact,
    shown,
)
from respan_mcp.net import Caller
from respan_mcp.retry import RETRY_STATUSES, RetryPolicy, retryable
from respan_mcp.server import KeyPolicy

pytestmark = pytest.mark.anyio


KEY = "sk-canary-7f3e9"
SCORE = {"id": "score_1", "created_at": "2026-11-24T00:00:00Z", "numerical_value": 4.0}
WRITE = {"evaluator_slug": "q", "numerical_value": 1}
FIXED = RetryPolicy(random=lambda: 0.5)  # jitter factor exactly 1: waits of 0.25, 0.5, 1 s, ...

Handler = Callable[[httpx2.Request], httpx2.Response]


class RecordingClock:
    """A clock whose sleeps return at once and are remembered: retries cost no wall-clock time."""

    def __init__(self) -> None:
        self.time = 0.0
        self.slept: list[float] = []

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.time += max(0.0, seconds)
        await anyio.lowlevel.checkpoint()


def client_with(
    *answers: httpx2.Response | Exception, retry: RetryPolicy | None = None, **config: object
) -> tuple[RespanClient, list[httpx2.Request]]:
    """A client whose transport answers in turn with `answers`; returns the requests it saw.

    Its clock only records sleeps (see `slept`), and its jitter is fixed.
    """
    seen: list[httpx2.Request] = []
    queue = list(answers)

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    settings = {"api_key": KEY, "max_retries": 3} | config
    cfg = Config(**settings)  # type: ignore[arg-type]
    policy = retry or replace(RetryPolicy.for_retries(cfg.max_retries), random=lambda: 0.5)
    client = RespanClient(cfg, transport=httpx2.MockTransport(handler), retry=policy, clock=RecordingClock())
    return client, seen


def caller_of(client: RespanClient, api_key: str | None = None) -> Caller:
    """The caller the key policy resolves: the caller's own key (as over HTTP), or the server's."""
    policy = KeyPolicy(client.config.api_key, allow_server_key=True)
    return policy.caller({"authorization": f"Bearer {api_key}"} if api_key else None)


async def upsert(client: RespanClient, log_id: str, body: dict[str, Any], *, api_key: str | None = None,
                 policy: RetryPolicy | None = None) -> Any:
    return await client.send(caller_of(client, api_key), routes.upsert_log_score(log_id, body), policy)


async def update(client: RespanClient, score_id: str, body: dict[str, Any], *, api_key: str | None = None) -> Any:
    return await client.send(caller_of(client, api_key), routes.update_score(score_id, body))


async def get(client: RespanClient, score_id: str, *, policy: RetryPolicy | None = None) -> Any:
    return await client.send(caller_of(client), routes.get_score(score_id), policy)


def slept(client: RespanClient) -> list[float]:
    assert isinstance(client.clock, RecordingClock)
    return client.clock.slept


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("https://api.respan.ai", "https://api.respan.ai"),
        ("https://api.respan.ai/", "https://api.respan.ai"),
        ("https://api.respan.ai/api", "https://api.respan.ai"),
        ("https://api.respan.ai/api/", "https://api.respan.ai"),
        ("https://endpoint.respan.ai/api", "https://endpoint.respan.ai"),
        ("  http://127.0.0.1:9000/  ", "http://127.0.0.1:9000"),
    ],
)
def test_base_url_normalised(raw: str, expected: str) -> None:
    assert normalise_base_url(raw) == expected


def test_both_base_url_variables_work() -> None:
    assert load_config({"RESPAN_BASE_URL": "https://a.example/api"}).base_url == "https://a.example"
    assert load_config({"RESPAN_API_BASE_URL": "https://b.example"}).base_url == "https://b.example"
    assert load_config({}).base_url == DEFAULT_BASE_URL
    assert load_config({}).api_url == f"{DEFAULT_BASE_URL}/api"


def test_config_repr_hides_key() -> None:
    config = load_config({"RESPAN_API_KEY": KEY})
    assert config.api_key == KEY
    assert KEY not in repr(config) and KEY not in str(config)


async def test_upsert_sends_bearer_key_user_agent_and_slash() -> None:
    client, seen = client_with(httpx2.Response(201, json=SCORE))
    assert await upsert(client, "log-1", {"evaluator_slug": "q", "numerical_value": 4}) == SCORE
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == "https://api.respan.ai/api/logs/log-1/scores/"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["user-agent"].startswith("respan-mcp/")
    assert json.loads(request.content) == {"evaluator_slug": "q", "numerical_value": 4}


async def test_update_patches_score_path() -> None:
    client, seen = client_with(httpx2.Response(200, json=SCORE))
    await update(client, "score_1", {"numerical_value": 5})
    assert (seen[0].method, seen[0].url.raw_path) == ("PATCH", b"/api/scores/score_1/")


async def test_per_call_key_wins() -> None:
    client, seen = client_with(httpx2.Response(200, json=SCORE))
    await update(client, "s", {"numerical_value": 1}, api_key="caller-key")
    assert seen[0].headers["authorization"] == "Bearer caller-key"


@pytest.mark.parametrize("log_id", ["../x", "a/b", "a?b=c", "a#b", "%2e%2e", "x/../../admin", "..."])
async def test_hostile_ids_stay_in_their_segment(log_id: str) -> None:
    client, seen = client_with(httpx2.Response(201, json=SCORE))
    await upsert(client, log_id, {"evaluator_slug": "q", "numerical_value": 1})
    raw = seen[0].url.raw_path.decode()
    assert raw.startswith("/api/logs/") and raw.endswith("/scores/")
    segment = raw.removeprefix("/api/logs/").removesuffix("/scores/")
    assert "/" not in segment and segment not in (".", "..") and "?" not in raw
    assert segment == path_segment(log_id)


@pytest.mark.parametrize("log_id", ["..", "."])
async def test_dot_segment_ids_are_refused_unsent(log_id: str) -> None:
    client, seen = client_with(httpx2.Response(201, json=SCORE))
    with pytest.raises(InvalidRequestError, match="not a Respan id"):
        await upsert(client, log_id, {"evaluator_slug": "q", "numerical_value": 1})
    assert seen == []


async def test_missing_key_sends_nothing() -> None:
    client, seen = client_with(httpx2.Response(201, json=SCORE), api_key=None)
    with pytest.raises(MissingAPIKeyError, match="RESPAN_API_KEY"):
        await upsert(client, "l", {"evaluator_slug": "q", "numerical_value": 1})
    assert seen == []


async def test_401_is_not_retried_and_says_key_rejected() -> None:
    client, seen = client_with(httpx2.Response(401, json={"detail": "Invalid API key."}))
    with pytest.raises(AuthenticationError, match="rejected the API key.*Invalid API key.*RESPAN_API_KEY") as err:
        await upsert(client, "l", {"evaluator_slug": "q", "numerical_value": 1})
    assert len(seen) == 1 and KEY not in str(err.value)


async def test_404_names_the_log_and_is_not_retried() -> None:
    client, seen = client_with(httpx2.Response(404, json={"detail": "Log not found."}))
    with pytest.raises(NotFoundError, match="Log not found.*log_id 'nope'"):
        await upsert(client, "nope", {"evaluator_slug": "q", "numerical_value": 1})
    assert len(seen) == 1


@pytest.mark.parametrize(
    "body, expected",
    [
        ({"numerical_value": ["A valid number is required."]}, "numerical_value: A valid number is required."),
        (
            {"detail": "Validation error", "errors": {"evaluator": ["Provide either evaluator_id or evaluator_slug."]}},
            "evaluator: Provide either evaluator_id or evaluator_slug.",
        ),
        ({"non_field_errors": ["At least one score value is required."]}, "(400 Bad Request: At least one"),
        ({"error": "bad thing"}, "bad thing"),
    ],
)
async def test_400_passes_on_the_api_field_messages(body: dict, expected: str) -> None:
    client, seen = client_with(httpx2.Response(400, json=body))
    with pytest.raises(BadRequestError) as err:
        await upsert(client, "l", {"evaluator_slug": "q", "numerical_value": 1})
    assert expected in str(err.value) and len(seen) == 1


async def test_503_twice_then_success_recovers() -> None:
    client, seen = client_with(
        httpx2.Response(503, text="busy"), httpx2.Response(503, text="busy"), httpx2.Response(201, json=SCORE)
    )
    assert await upsert(client, "l", {"evaluator_slug": "q", "numerical_value": 1}) == SCORE
    assert len(seen) == 3
    assert slept(client) == [0.25, 0.5]  # the policy's backoff, through the client's clock


async def test_html_502_summarised_after_bounded_retries() -> None:
    page = "<html><head><title>502 Bad Gateway</title><style>x{}</style></head><body>" + "<p>nginx</p>" * 500
    client, seen = client_with(httpx2.Response(502, text=page, headers={"content-type": "text/html"}), max_retries=2)
    with pytest.raises(InternalServerError) as err:
        await upsert(client, "l", {"evaluator_slug": "q", "numerical_value": 1})
    assert len(seen) == 3
    assert "502 Bad Gateway" in str(err.value) and "<" not in str(err.value) and len(str(err.value)) < 400


async def test_429_waits_retry_after_from_body() -> None:
    client, seen = client_with(
        httpx2.Response(429, json={"detail": "Rate limit exceeded", "retry_after": 0.01}),
        httpx2.Response(201, json=SCORE),
    )
    assert await upsert(client, "l", {"evaluator_slug": "q", "numerical_value": 1}) == SCORE
    assert len(seen) == 2
    assert slept(client) == [0.01]  # exactly what Respan asked for


async def test_429_with_long_wait_fails_fast_saying_when() -> None:
    client, seen = client_with(
        httpx2.Response(429, json={"detail": "Rate limit exceeded", "retry_after": 300}, headers={"Retry-After": "300"})
    )
    with pytest.raises(RateLimitError, match="retry after 300 s") as err:
        await upsert(client, "l", {"evaluator_slug": "q", "numerical_value": 1})
    assert len(seen) == 1 and err.value.retry_after == 300
    assert slept(client) == []


async def test_read_timeout_says_write_may_have_happened() -> None:
    client, seen = client_with(httpx2.ReadTimeout("slow"), timeout=0.5)
    with pytest.raises(APITimeoutError, match="within 0.5 s.*may or may not have been written.*safe"):
        await upsert(client, "l", {"evaluator_slug": "q", "numerical_value": 1})
    # Sent but unanswered: tried again by the policy (writes are idempotent), then reported.
    assert len(seen) == 4 and slept(client) == [0.25, 0.5, 1.0]


async def test_retries_stop_where_the_next_try_could_not_end_within_the_budget() -> None:
    """A host gives up on a tool call at about 60 s: a try that would end after the budget is not started."""
    clock = RecordingClock()
    seen: list[httpx2.Request] = []

    def times_out(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        clock.time += 30.0  # each try spends the whole RESPAN_TIMEOUT before it fails
        raise httpx2.ReadTimeout("slow")

    config = Config(api_key=KEY, timeout=30.0, max_retries=3)
    client = RespanClient(config, transport=httpx2.MockTransport(times_out), retry=FIXED, clock=clock)
    with pytest.raises(APITimeoutError, match="may or may not have been written"):
        await upsert(client, "l", WRITE)
    assert len(seen) == 1 and clock.slept == []  # 30 s spent; another 30 s try would pass 50 s
    assert FIXED.fits(0.0, 0.25, 30.0) and not FIXED.fits(30.0, 0.25, 30.0)


async def test_connection_error_names_host_after_retries() -> None:
    client, seen = client_with(httpx2.ConnectError("refused"), max_retries=1, base_url="http://127.0.0.1:9")
    with pytest.raises(APIConnectionError, match=r"http://127\.0\.0\.1:9"):
        await upsert(client, "l", {"evaluator_slug": "q", "numerical_value": 1})
    assert len(seen) == 2


async def test_non_json_success_is_an_error() -> None:
    client, _ = client_with(httpx2.Response(200, text="<html>login page</html>"))
    with pytest.raises(UnexpectedAnswerError, match="not JSON"):
        await upsert(client, "l", {"evaluator_slug": "q", "numerical_value": 1})


# -- the retry policy -------------------------------------------------------------------------------


FAILED = InternalServerError("failed", 503)


def asked(seconds: float) -> RateLimitError:
    return RateLimitError("slow down", 429, retry_after=seconds)


def test_policy_backs_off_exponentially_with_jitter_up_to_its_cap() -> None:
    assert [FIXED.delay(FAILED, attempt) for attempt in range(1, 5)] == [0.25, 0.5, 1.0, None]
    capped = RetryPolicy(attempts=20, base=1.0, cap=8.0, random=lambda: 0.5)
    assert [capped.delay(FAILED, attempt) for attempt in (4, 5, 19)] == [8.0, 8.0, 8.0]
    assert RetryPolicy(random=lambda: 0.0).delay(FAILED, 1) == 0.125  # jitter spans 0.5x ...
    assert RetryPolicy(random=lambda: 0.999).delay(FAILED, 1) == pytest.approx(0.375, abs=1e-3)  # ... to 1.5x


def test_policy_honours_retry_after_up_to_max_wait() -> None:
    assert FIXED.delay(asked(7.0), 1) == 7.0
    assert FIXED.delay(asked(20.0), 1) == 20.0
    assert FIXED.delay(asked(20.5), 1) is None  # longer than a call should wait: give up, saying when
    assert FIXED.delay(asked(1.0), 4) is None  # out of tries


def test_policy_comes_from_config() -> None:
    assert RetryPolicy.for_retries(0).attempts == 1
    assert RetryPolicy.for_retries(5).attempts == 6
    assert FIXED.once().attempts == 1 and FIXED.once().base == FIXED.base
    assert RETRY_STATUSES == {429, 500, 502, 503, 504}


PAST = "Wed, 21 Oct 2015 07:28:00 GMT"


@pytest.mark.parametrize("value", ["soon", "0x10", "inf", "nan", "-5", "", "1e3", PAST, "Wed, 21 Oct 2099", None, True])
def test_unreadable_retry_after_is_none(value: object) -> None:
    assert parse_retry_after(value) is None


def test_readable_retry_after() -> None:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert parse_retry_after("30") == 30.0 and parse_retry_after(" 1.5 ") == 1.5 and parse_retry_after("0") == 0.0
    assert parse_retry_after(12) == 12.0 and parse_retry_after(0.5) == 0.5
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now=now.timestamp) == 90.0
    assert parse_retry_after("1" * 400) == 86_400.0  # read as a day, never a 400-digit wait
    assert parse_retry_after(10**400) == 86_400.0
    assert parse_retry_after(float("inf")) is None and parse_retry_after(-1) is None


@pytest.mark.parametrize("header", ["soon", "0x10", "inf", "nan", "-5", PAST])
@pytest.mark.parametrize("status", [429, 503])
async def test_unreadable_retry_after_falls_back_to_backoff(header: str, status: int) -> None:
    client, seen = client_with(
        httpx2.Response(status, json={"detail": "Slow down"}, headers={"Retry-After": header}),
        httpx2.Response(201, json=SCORE),
    )
    assert await upsert(client, "l", WRITE) == SCORE
    assert len(seen) == 2 and slept(client) == [0.25]


async def test_unreadable_header_then_body_retry_after() -> None:
    client, _ = client_with(
        httpx2.Response(429, json={"detail": "Rate limit exceeded", "retry_after": 3}, headers={"Retry-After": "soon"}),
        httpx2.Response(201, json=SCORE),
    )
    await upsert(client, "l", WRITE)
    assert slept(client) == [3.0]


async def test_persistent_429_without_a_readable_wait_says_when() -> None:
    client, seen = client_with(httpx2.Response(429, text="slow down", headers={"Retry-After": "nan"}), max_retries=1)
    with pytest.raises(RateLimitError, match="retry in a minute") as err:
        await upsert(client, "l", WRITE)
    assert len(seen) == 2 and err.value.retry_after is None


@pytest.mark.parametrize(
    "failure",
    [
        httpx2.Response(500, json={"detail": "Internal error"}),
        httpx2.ConnectError("refused"),
        httpx2.ReadTimeout("slow"),
        httpx2.RemoteProtocolError("server disconnected"),
        ConnectionResetError("reset"),
    ],
    ids=["500", "connect error", "read timeout", "dropped mid-answer", "reset"],
)
async def test_transient_failures_are_retried_by_the_one_policy(failure: httpx2.Response | Exception) -> None:
    client, seen = client_with(failure, failure, httpx2.Response(201, json=SCORE))
    assert await upsert(client, "l", WRITE) == SCORE
    assert len(seen) == 3 and slept(client) == [0.25, 0.5]


async def test_reads_retry_by_the_same_policy() -> None:
    client, seen = client_with(httpx2.Response(502, text="bad gateway"), httpx2.Response(200, json=SCORE))
    assert await get(client, "score_1") == SCORE
    assert len(seen) == 2 and slept(client) == [0.25]


async def test_max_retries_per_call_overrides_the_policy() -> None:
    client, seen = client_with(httpx2.Response(503, text="busy"))
    with pytest.raises(InternalServerError):
        await get(client, "s", policy=client.retry.once())
    assert len(seen) == 1 and slept(client) == []


# -- errors are raised, with Respan's request id -------------------------------------------------------


@pytest.mark.parametrize("header", ["X-Request-ID", "Request-Id"])
async def test_request_id_is_kept_on_the_error(header: str) -> None:
    client, _ = client_with(httpx2.Response(400, json={"detail": "Bad value."}, headers={header: "req_7d1c2e"}))
    with pytest.raises(BadRequestError) as err:
        await upsert(client, "l", WRITE)
    assert err.value.request_id == "req_7d1c2e"
    assert "Bad value." in str(err.value) and "request id req_7d1c2e" in str(err.value)


async def test_no_request_id_no_mention() -> None:
    client, _ = client_with(httpx2.Response(404, json={"detail": "Log not found."}))
    with pytest.raises(NotFoundError) as err:
        await upsert(client, "l", WRITE)
    assert err.value.request_id is None and "request id" not in str(err.value)


# -- whatever the transport raises is a RespanError ----------------------------------------------------


@pytest.mark.parametrize("key", ["kéy-1234567890", "key with space", "key-1234567890\n", "\tkey-1234567890", "ключ"])
@pytest.mark.parametrize("whose", ["caller", "configured"])
async def test_a_key_that_cannot_be_sent_is_refused_unsent_and_unshown(key: str, whose: str) -> None:
    if whose == "caller":
        if key != key.strip():
            pytest.skip("a header's token is trimmed of surrounding white space: what remains is a sendable key")
        client, seen = client_with(httpx2.Response(201, json=SCORE))
        call = upsert(client, "l", WRITE, api_key=key)
    else:
        client, seen = client_with(httpx2.Response(201, json=SCORE), api_key=key)
        call = upsert(client, "l", WRITE)
    with pytest.raises(InvalidKeyError, match="character that cannot be sent") as err:
        await call
    assert seen == [] and key.strip() not in str(err.value)
    assert ("Authorization header" in str(err.value)) == (whose == "caller")
    assert isinstance(err.value, KeyUnusableError)  # no usable key: a batch stops, as for a missing one


async def test_a_100000_character_id_is_a_short_error_and_nothing_is_sent() -> None:
    client, seen = client_with(httpx2.Response(201, json=SCORE))
    with pytest.raises(InvalidRequestError) as err:
        await upsert(client, "x" * 100_000, WRITE)
    assert err.value.for_agent().endswith("Nothing was sent.")
    assert seen == [] and len(str(err.value)) < 300 and "xxxxxxxx" not in str(err.value)


async def test_an_illegal_header_from_the_transport_is_named_not_shown() -> None:
    client, seen = client_with(httpx2.LocalProtocolError(f"Illegal header value b'Bearer {KEY}'"))
    with pytest.raises(InvalidRequestError, match="character HTTP does not allow") as err:
        await upsert(client, "l", WRITE)
    assert len(seen) == 1 and KEY not in str(err.value)  # not retried: it cannot get better


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_is_reported_never_followed(status: int) -> None:
    moved = httpx2.Response(status, headers={"Location": "https://api.elsewhere.example/api/logs/l/scores/"})
    client, seen = client_with(moved, httpx2.Response(201, json=SCORE))
    with pytest.raises(RedirectError) as err:
        await upsert(client, "l", WRITE)
    message = str(err.value)
    assert "base URL redirects" in message and "RESPAN_BASE_URL" in message and "api.elsewhere.example" in message
    assert len(seen) == 1 and seen[0].url.host == "api.respan.ai"  # the key went nowhere else


async def test_an_undecodable_answer_is_named() -> None:
    broken = httpx2.Response(200, stream=CountingStream([b"not gzip at all"]), headers={"Content-Encoding": "gzip"})
    client, seen = client_with(broken)
    with pytest.raises(ConnectionSetupError, match="could not be decoded"):
        await upsert(client, "l", WRITE)
    assert len(seen) == 1  # not retried: it cannot get better


# -- the timeout bounds the whole request ---------------------------------------------------------------


class DripServer:
    """A loopback HTTP server that answers 200 and then sends its body one byte at a time, forever-slow."""

    def __init__(self, body: bytes, every: float = 0.05) -> None:
        self.body, self.every = body, every
        self.sent = 0
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> DripServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(timeout=10)

    def _serve(self) -> None:
        try:
            connection, _ = self._listener.accept()
        except OSError:
            return
        with connection:
            request = b""
            while b"\r\n\r\n" not in request:
                request += connection.recv(65536)
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(self.body)}\r\n\r\n"
            connection.sendall(head.encode())
            for byte in self.body:
                if self._stop.wait(self.every):
                    return
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    return  # the client hung up
                self.sent += 1


DRIPPED = json.dumps({"id": "score_1", "created_at": "2026-11-24T00:00:00Z", "pad": "x" * 2000}).encode()


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_an_answer_dripped_slowly_is_cut_at_the_timeout(method: str) -> None:
    with DripServer(DRIPPED) as server:
        client = RespanClient(Config(api_key=KEY, base_url=server.url, timeout=0.5, max_retries=0))
        try:
            with anyio.fail_after(30):  # a failure bound only: each byte comes well within any read timeout
                with pytest.raises(APITimeoutError, match="did not answer within 0.5 s") as err:
                    if method == "POST":
                        await upsert(client, "l", WRITE)
                    else:
                        await get(client, "score_1")
        finally:
            await client.aclose()
        assert 0 < server.sent < len(DRIPPED)  # it had started answering, and was not read to the end
    if method == "POST":
        assert "may or may not have been written" in str(err.value)


# -- the answer is bounded --------------------------------------------------------------------------------


class CountingStream(httpx2.AsyncByteStream):
    """A response body handed out chunk by chunk, counting how much of it was read."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.read = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.read += 1
            yield chunk


def streamed(status: int, stream: CountingStream, **headers: str) -> tuple[RespanClient, list[httpx2.Request]]:
    return client_with(httpx2.Response(status, stream=stream, headers=headers))


@pytest.fixture(scope="module")
def gzip_bomb() -> list[bytes]:
    """400 MiB of zeros, gzipped to under 2 MB, in 16 KiB pieces."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    data = b"".join([compressor.compress(zeros) for _ in range(400)] + [compressor.flush()])
    return [data[i : i + 16384] for i in range(0, len(data), 16384)]


def assert_too_large(error: UnexpectedAnswerError) -> None:
    message = str(error)
    assert "larger than 4 MiB" in message and "not read to the end" in message
    assert "reach" not in message and "connect" not in message  # not a network failure


async def test_a_large_answer_is_refused_while_streaming() -> None:
    body = CountingStream([b"x" * 65536] * 256)  # 16 MiB, no Content-Length
    client, seen = streamed(200, body, **{"Content-Type": "application/json"})
    with pytest.raises(UnexpectedAnswerError) as err:
        await upsert(client, "l", WRITE)
    assert_too_large(err.value)
    assert "The write itself went through" in str(err.value)  # a 2xx to a POST: it was written
    assert body.read <= MAX_ANSWER // 65536 + 1 < len(body.chunks)
    assert len(seen) == 1 and not retryable(err.value)


async def test_a_declared_large_answer_is_refused_unread() -> None:
    body = CountingStream([b"x" * 65536] * 80)
    client, _ = streamed(200, body, **{"Content-Length": str(80 * 65536)})
    with pytest.raises(UnexpectedAnswerError) as err:
        await get(client, "s")
    assert_too_large(err.value)
    assert "went through" not in str(err.value) and body.read == 0


async def test_a_gzip_bomb_is_refused_early_and_memory_stays_low(gzip_bomb: list[bytes]) -> None:
    body = CountingStream(gzip_bomb)
    client, _ = streamed(200, body, **{"Content-Encoding": "gzip", "Content-Type": "application/json"})
    tracemalloc.start()
    try:
        with pytest.raises(UnexpectedAnswerError) as err:
            await upsert(client, "l", WRITE)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert_too_large(err.value)
    assert body.read < len(gzip_bomb) // 10  # a small part of the compressed stream was read
    assert peak < 16 * 1024 * 1024  # the cap and a decoding chunk, never the 400 MiB


async def test_an_error_answer_is_bounded_too() -> None:
    body = CountingStream([b"<html>" + b"x" * 65536] * 256)
    client, seen = streamed(502, body, **{"Content-Type": "text/html"})
    with pytest.raises(UnexpectedAnswerError) as err:
        await get(client, "s")
    assert_too_large(err.value)
    assert len(seen) == 1 and body.read < len(body.chunks)


# -- redaction: no piece of a key is ever shown ---------------------------------------------------------

CANARY = "rk-CANARY+9f3b/7e51=c0d2.a8Zq"
OTHER = "sk-CALLER+41d9/ab07=ee3c.k2Wm"


def assert_no_piece(text: str, *keys: str) -> None:
    """No run of 8 characters of a key, as sent, URL-encoded (either hex case) or in another letter case."""
    lowered = text.lower()
    for key in keys:
        for form in {key, quote(key, safe=""), quote_plus(key)}:
            for start in range(len(form) - 7):
                assert form[start : start + 8].lower() not in lowered, (form[start : start + 8], text)


def echoes(key: str) -> list[tuple[int, dict[str, str], str]]:
    """Error answers that give the key back, whole or in part: (status, headers, body)."""
    page = "<html><head><title>Forbidden</title></head><body>"

    def json_detail(text: str) -> str:
        return json.dumps({"detail": text})

    found = [
        (401, {}, json_detail(f"Invalid token {key}.")),
        (400, {}, json.dumps({"numerical_value": [f"Refused for Bearer {key}"]})),
        (403, {}, json.dumps({"error": f"key {key.upper()} may not write"})),
        (400, {}, json_detail(f"see /login?token={quote(key, safe='')}&next=/")),
        (400, {}, json_detail(f"see /login?token={quote(key, safe='').lower()}")),
        (400, {}, json_detail(f"see /login?token={quote_plus(key)}")),
        (502, {"Content-Type": "text/html"}, f"<html><title>Bad Gateway {key}</title></html>"),
        (502, {"Content-Type": "text/html"}, f"{page}<p>Your key <b>{html.escape(key)}</b> is blocked</p>"),
        (502, {"Content-Type": "text/html"}, page + "".join(f"&#{ord(c)};" for c in key) + "</body></html>"),
        (200, {"Content-Type": "text/html"}, f"<p>login as {key}</p>"),  # a success that is not JSON
        (400, {"X-Request-ID": key}, json_detail("bad")),
        (301, {"Location": f"https://{quote(key, safe='')}@elsewhere.example/"}, ""),
    ]
    for cut in range(len(key) - 7):  # the key clipped at every offset, from either end
        found.append((400, {}, json_detail(f"token {key[cut:]} refused")))
        found.append((400, {}, json_detail(f"token {key[: len(key) - cut]}")))
    for offset in range(0, 320, 7):  # the key across the point where a long message is clipped
        found.append((400, {}, json_detail("x" * offset + key + "y" * 400)))
    return found


@pytest.mark.parametrize("whose", ["configured", "caller"])
async def test_no_piece_of_a_key_echoed_back_is_ever_shown(whose: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    key = CANARY if whose == "configured" else OTHER
    shown_texts: list[str] = []
    for status, headers, body in echoes(key):
        answer = httpx2.Response(status, headers=headers, content=body.encode())
        client, seen = client_with(answer, api_key=CANARY, max_retries=1)
        with pytest.raises(Exception) as err:
            await upsert(client, "l", WRITE, api_key=OTHER if whose == "caller" else None)
        shown_texts.append(str(err.value))
        assert seen[0].headers["authorization"] == f"Bearer {key}"  # the key really was the one sent
    for text in shown_texts:
        assert_no_piece(text, CANARY, OTHER)
    assert_no_piece(caplog.text, CANARY, OTHER)
    assert any("[API key]" in text for text in shown_texts)


def test_redact_hides_every_piece_of_every_secret_given() -> None:
    token = "tok_0123456789abcdef"
    text = f"a {token} b {token[3:14]} c {CANARY[::1][5:20]} d {quote(CANARY, safe='')}"
    cleaned = redact(text, [token, CANARY, None, ""])
    assert_no_piece(cleaned, token, CANARY)
    assert cleaned.startswith("a [API key] b [API key] c [API key] d [API key]")
    assert redact("nothing secret here", [token]) == "nothing secret here"
    assert redact("short abc key", ["abc"]) == "short [API key] key"  # a key under 8 characters: whole only


def test_a_key_across_the_clip_point_leaves_no_stub() -> None:
    """Redacted first, then clipped: clipping first would leave the key's first characters before the '…'."""
    for offset in range(280, 300):
        text = shown("x" * offset + CANARY + " trailing words", [CANARY], 300)
        assert len(text) <= 300 and "rk-" not in text and "CAN" not in text, text[-20:]
