"""The Respan API: every route it serves us, with its not-found wording, and the one retry loop.

`Request` values are built here and nowhere else (`upsert_log_score`, `get_score`, ...), so a
path, its encoding and what a 404 means for it are each written once. `RespanClient.send`
is the one path every request takes: one pooled HTTP client, the key of the `Caller`, tried
again as a `RetryPolicy` allows. Every failure is raised as a `RespanError` whose message is
a sentence an agent can act on. Each request is bounded in time (connect to last byte) and
in size (the decoded answer), and nothing here ever puts the API key in a message, a log
line or a repr; an answer is made fit to show by `results.readable_answer`.

All of it but the read routes, the evaluator lookup and `package_version` runs on every write,
so it stays one module: a module split off would be one more on every write's path
(tests/test_layers.py counts them).
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import quote, urlsplit

import anyio
import httpx2

from respan_mcp.answers import MIB, answer_too_large, error_from_exception, error_from_response, not_json, request_id
from respan_mcp.config import Config
from respan_mcp.errors import InvalidRequestError, NotFoundError, RespanError, UnexpectedAnswerError
from respan_mcp.net import pieces_of, redact
from respan_mcp.results import readable_answer
from respan_mcp.retry import Clock, EventLoopClock, Retrying, RetryPolicy
from respan_mcp.values import prune_json

logger = logging.getLogger(__name__)

MAX_ANSWER = 4 * MIB  # decoded bytes; a score answer is a few KB, a page of 100 scores well under 1 MiB
MAX_LOG_ANSWER = 64 * MIB  # one whole log (a full request and response) can be tens of MB; read once, then cut
EVALUATOR_SEARCH_PAGE = 100  # evaluators searched for an exact slug

# What the transport may raise; each becomes a RespanError (answers.error_from_exception).
_TRANSPORT_FAILURES = (httpx2.RequestError, httpx2.InvalidURL, TimeoutError, OSError)


def package_version() -> str:
    try:
        return version("respan-mcp")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


@dataclass(frozen=True)
class Caller:
    """Whom a call is made for, resolved once per call by the key policy and passed down.

    `key` is what every request of the call carries (never empty); `secrets` is every key a
    message must never show a piece of (the caller's and the server's).
    """

    key: str = field(repr=False)
    secrets: tuple[str, ...] = field(repr=False)
    # What redaction looks for, worked out once with the caller (on stdio, once for the process), so a
    # successful answer is checked for a piece of a key without working them out again.
    pieces: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.pieces:
            object.__setattr__(self, "pieces", pieces_of(self.secrets))


@dataclass(frozen=True)
class Request:
    """One request to the API: a route's method and path (under the base URL's `/api`), and what a 404 means."""

    method: str
    path: str
    not_found: str
    body: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    max_answer: int = MAX_ANSWER  # decoded bytes read at most


def path_segment(value: str) -> str:
    """Percent-encode one path segment so an id like `../x` or `a/b` can never leave its route.

    `.` and `..` are refused outright: encoded as `%2E%2E` they are still dot segments to any
    proxy that normalises URLs (RFC 3986), and no Respan id is one.
    """
    if value in (".", ".."):
        raise InvalidRequestError(f"'{value}' is not a Respan id; use the id as Respan shows it")
    return quote(value, safe="")


# -- the routes ------------------------------------------------------------------------------------


# Respan records a span when it ends: a log asked for as its run ends may not be there yet.
NOT_RECORDED_YET = "if its run ended just now, Respan may not have recorded it yet: try again in a minute"


def upsert_log_score(log_id: str, body: dict[str, Any]) -> Request:
    evaluator = "evaluator_id" if "evaluator_id" in body else "evaluator_slug"
    return Request(
        "POST",
        f"/logs/{path_segment(log_id)}/scores/",
        f"check that log_id '{log_id}' is a log in this Respan project (and the {evaluator}); {NOT_RECORDED_YET}",
        body=body,
    )


def list_logs(filters: dict[str, Any], params: dict[str, Any]) -> Request:
    """`POST /api/request-logs/list/`: every filter ANDed, paging and the time window in the query."""
    return Request(
        "POST",
        "/request-logs/list/",
        "check RESPAN_BASE_URL: the log list route was not found",
        body={"filters": filters, "operator": "AND"},
        params=params,
    )


def get_log(log_id: str) -> Request:
    return Request(
        "GET",
        f"/request-logs/{path_segment(log_id)}/",
        f"no log has id '{log_id}' (find_logs finds logs by their identifiers); {NOT_RECORDED_YET}",
        max_answer=MAX_LOG_ANSWER,
    )


def list_log_scores(log_id: str, page: int, page_size: int) -> Request:
    return Request(
        "GET",
        f"/logs/{path_segment(log_id)}/scores/",
        f"check that log_id '{log_id}' is a log in this Respan project",
        params={"page": page, "page_size": page_size},
    )


def _score(method: str, score_id: str, body: dict[str, Any] | None = None) -> Request:
    not_found = f"no score has id '{score_id}'; use the id a score write returned (list_log_scores lists a log's scores)"
    return Request(method, f"/scores/{path_segment(score_id)}/", not_found, body=body)


def update_score(score_id: str, body: dict[str, Any]) -> Request:
    return _score("PATCH", score_id, body)


def get_score(score_id: str) -> Request:
    return _score("GET", score_id)


def get_evaluator(evaluator_id: str) -> Request:
    return Request("GET", f"/evaluators/{path_segment(evaluator_id)}/", f"no evaluator has id '{evaluator_id}'")


def search_evaluators(search: str | None, page: int, page_size: int) -> Request:
    params: dict[str, Any] = {"page": page, "page_size": page_size}
    if search:
        params["search"] = search
    return Request("GET", "/evaluators/", "check RESPAN_BASE_URL: the evaluators route was not found", params=params)


def results(data: Any) -> list[dict[str, Any]]:
    """The objects of a DRF page (`{count, next, previous, results}`), or of a bare list."""
    items = data.get("results", []) if isinstance(data, dict) else data if isinstance(data, list) else []
    return [item for item in items if isinstance(item, dict)]


class RespanClient:
    """The Respan API over one pooled `httpx2.AsyncClient`, shared for the server's life.

    Failed requests are tried again by `retry` (from RESPAN_MAX_RETRIES unless given), which
    is safe for every request made here: reads, and writes that are idempotent (the upsert
    is keyed by log, evaluator and scorer; PATCH sets values). Waits go through `clock`.
    """

    def __init__(
        self,
        config: Config,
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.retry = retry or RetryPolicy.for_retries(config.max_retries)
        self.clock: Clock = clock or EventLoopClock()
        self.api_path = urlsplit(config.api_url).path.rstrip("/")  # what a route's path sits under: /api
        self._in_flight: anyio.Semaphore | None = None  # made on first use, inside the event loop
        self._http = httpx2.AsyncClient(
            base_url=config.api_url,
            # Only encodings this client decodes itself, within its bound (see _read).
            headers={
                "User-Agent": f"respan-mcp/{package_version()}",
                "Accept": "application/json",
                "Accept-Encoding": "gzip, deflate",
            },
            # Per phase, so a slow connect reads as one; the whole request is bounded in `_attempt`.
            timeout=httpx2.Timeout(config.timeout, connect=min(config.timeout, 10.0)),
            transport=transport,
            follow_redirects=False,  # a redirect would carry the key elsewhere: it is reported instead
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def is_closed(self) -> bool:
        return self._http.is_closed

    async def find_evaluator(
        self, caller: Caller, kind: str, value: str, policy: Retrying | None = None
    ) -> dict[str, Any] | None:
        """The evaluator with this id or exact slug, as Respan describes it; None when no evaluator has it.

        A slug is found by searching and keeping the exact match (the search also matches names).
        """
        if kind == "id":
            try:
                data = await self.send(caller, get_evaluator(value), policy)
            except NotFoundError:
                return None
            if not isinstance(data, dict):
                raise UnexpectedAnswerError(
                    f"the Respan API answered without an evaluator for id '{value}'; check that RESPAN_BASE_URL "
                    "points at the Respan API"
                )
            return data
        data = await self.send(caller, search_evaluators(value, 1, EVALUATOR_SEARCH_PAGE), policy)
        return next((item for item in results(data) if item.get("evaluator_slug") == value), None)

    async def send(self, caller: Caller, request: Request, policy: Retrying | None = None) -> Any:
        """Send one request and return its JSON answer, trying again as `policy` (the client's by default) allows.

        The one loop every request takes, the batch's items included. Raises a RespanError on failure.
        """
        policy = policy or self.retry
        started = self.clock.now()
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._attempt(request, caller)
            except RespanError as raised:
                error = _redacted(raised, caller.secrets)
            wait = policy.delay(error, attempt)
            if wait is None or not policy.fits(self.clock.now() - started, wait, self.config.timeout):
                raise error  # its message says when to come back, where waiting would help
            logger.warning(
                "Respan %s %s failed (%s); retry %d in %.1f s",
                request.method,
                redact(request.path, caller.secrets),
                error.status or type(error).__name__,
                attempt,
                wait,
            )
            await policy.wait(self.clock, wait)

    async def _attempt(self, request: Request, caller: Caller) -> Any:
        """One try: the parsed answer, or a raised RespanError."""
        progress = _Progress()
        try:
            built = self._http.build_request(
                request.method,
                request.path.lstrip("/"),
                json=request.body,
                params=request.params,
                headers={"Authorization": f"Bearer {caller.key}"},
                extensions={"trace": progress.trace},
            )
            async with self._slot():
                # The whole request, connect to last byte: an API that drips its answer cannot hold a call.
                with anyio.fail_after(self.config.timeout if self.config.timeout > 0 else None):
                    response = await self._http.send(built, stream=True)
                    try:
                        content = await self._read(response, request, caller.secrets)
                    finally:
                        await response.aclose()
        except _TRANSPORT_FAILURES as exc:
            raise error_from_exception(
                exc,
                base_url=self.config.base_url,
                timeout=self.config.timeout,
                method=request.method,
                sent=progress.sent,
            ) from None
        # The body is read: hand the error mapping a plain, already-decoded response.
        answer = httpx2.Response(response.status_code, headers=_plain_headers(response.headers), content=content)
        if not answer.is_success:
            raise error_from_response(answer, request.not_found, caller.secrets)
        if not content:
            return None
        try:
            return readable_answer(json.loads(prune_json(answer.text)), caller.pieces, caller.secrets)
        except ValueError:
            raise not_json(answer, caller.secrets, request.method) from None

    async def _read(self, response: httpx2.Response, request: Request, secrets: tuple[str, ...]) -> bytes:
        """The decoded body, refused as soon as it passes the request's cap (a small gzip can inflate to gigabytes).

        The raw bytes are decoded here, at most the cap + 1 bytes out of each piece, so memory
        stays bounded whatever one compressed chunk inflates to.
        """
        method, cap = request.method, request.max_answer
        if response.is_stream_consumed:  # already in memory (a transport that answers with whole bodies)
            if len(response.content) > cap:
                raise answer_too_large(response.status_code, method, cap, request_id(response, secrets))
            return response.content
        declared = response.headers.get("content-length", "")
        decoder = _decoder(response.headers.get("content-encoding", ""))
        if decoder is None and declared.isdigit() and int(declared) > cap:
            raise answer_too_large(response.status_code, method, cap, request_id(response, secrets))
        content = bytearray()
        try:
            async for pending in response.aiter_raw():
                while pending:
                    if decoder is None:
                        content += pending
                        pending = b""
                    else:
                        content += decoder.decompress(pending, cap + 1 - len(content))
                        pending = decoder.unconsumed_tail
                    if len(content) > cap:
                        raise answer_too_large(response.status_code, method, cap, request_id(response, secrets))
            if decoder is not None:
                content += decoder.flush()
        except zlib.error as exc:  # a broken gzip: reported like httpx's own decoding errors
            raise httpx2.DecodingError(str(exc)) from None
        return bytes(content)

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """Bounded, so a burst of calls queues here instead of exhausting sockets."""
        if self._in_flight is None:
            self._in_flight = anyio.Semaphore(max(1, self.config.max_concurrency))
        async with self._in_flight:
            yield


class _Progress:
    """Notes, from httpcore's trace events, whether the request left: a timeout before that is a connect failure."""

    def __init__(self) -> None:
        self.traced = False
        self.started_sending = False

    async def trace(self, event: str, info: dict[str, Any]) -> None:
        self.traced = True
        if "send_request_headers" in event:
            self.started_sending = True

    @property
    def sent(self) -> bool:
        # A transport that does not trace (a test's mock) may have let it through: say so.
        return self.started_sending or not self.traced


def _decoder(encoding: str) -> Any:
    """A zlib decompressor for the answer's Content-Encoding (gzip or deflate, the two we accept), or None."""
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return None
    if name in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if name == "deflate":
        return zlib.decompressobj()
    raise httpx2.DecodingError(f"unsupported Content-Encoding {name!r}")


def _plain_headers(headers: httpx2.Headers) -> list[tuple[bytes, bytes]]:
    """The answer's headers without those that describe the encoded body (it is decoded already).

    As the raw bytes that came: a header whose value is not ASCII must not fail an answer that is read."""
    dropped = (b"content-encoding", b"content-length", b"transfer-encoding")
    return [(name, value) for name, value in headers.raw if name.lower() not in dropped]


def _redacted(error: RespanError, secrets: tuple[str, ...]) -> RespanError:
    """The error with every piece of a key cut out of its message (the API's words were redacted when read)."""
    message = str(error)
    cleaned = redact(message, secrets)
    if cleaned != message:
        error.args = (cleaned,)
    return error
