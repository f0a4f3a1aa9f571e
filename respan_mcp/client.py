"""The Respan API: every route it serves us, with its not-found wording, and the one retry loop.

`Request` values are built here and nowhere else (`upsert_log_score`, `get_score`, ...), so a
path, its encoding and what a 404 means for it are each written once. `RespanClient.send` is
the one path every request takes: one pooled HTTP client, the `Caller`'s key, tried again as a
`RetryPolicy` allows, every failure raised as a `RespanError`. Each try is bounded in time
(connect to last byte) and in size (the decoded answer); nothing here puts a piece of a key in
a message, a log line or a repr, and an answer is made fit to show by `results.readable_answer`.

All of it but the read routes and the evaluator lookup runs on every write, so it stays one
module: one split off would be one more on every write's path (tests/packaging/test_layers.py counts them).
"""

from __future__ import annotations

import json
import logging
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import anyio
import httpx2

from respan_mcp.answers import MIB, answer_too_large, error_from_exception, error_from_response, not_json, request_id
from respan_mcp.config import Config
from respan_mcp.errors import InvalidRequestError, NotFoundError, RespanError, UnexpectedAnswerError
from respan_mcp.net import Caller, redact, user_agent
from respan_mcp.results import readable_answer
from respan_mcp.retry import Clock, EventLoopClock, Retrying, RetryPolicy
from respan_mcp.values import prune_json

logger = logging.getLogger(__name__)

MAX_ANSWER = 4 * MIB  # decoded bytes; a score answer is a few KB, a page of 100 scores well under 1 MiB
MAX_LOG_ANSWER = 64 * MIB  # one whole log (a full request and response) can be tens of MB; read once, then cut
EVALUATOR_SEARCH_PAGE = 100  # evaluators searched for an exact slug

# What the transport may raise; each becomes a RespanError (answers.error_from_exception).
_TRANSPORT_FAILURES = (httpx2.RequestError, httpx2.InvalidURL, TimeoutError, OSError)


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
    """Percent-encode one path segment so an id like `../x` or `a/b` can never leave its route. `.` and `..`
    are refused outright: as `%2E%2E` they are still dot segments to any proxy that normalises URLs (RFC 3986),
    and no Respan id is one."""
    if value in (".", ".."):
        raise InvalidRequestError(f"'{value}' is not a Respan id; use the id as Respan shows it")
    return quote(value, safe="")


# -- the routes ------------------------------------------------------------------------------------


# Respan records a span when it ends: a log asked for as its run ends may not be there yet.
NOT_RECORDED_YET = "if its run ended just now, Respan may not have recorded it yet: try again in a minute"


def _no_route(name: str) -> str:
    """A route every Respan serves: a 404 there means the base URL points somewhere else."""
    return f"check RESPAN_BASE_URL: the {name} route was not found"


def _log_in_project(log_id: str) -> str:
    return f"check that log_id '{log_id}' is a log in this Respan project"


def upsert_log_score(log_id: str, body: dict[str, Any]) -> Request:
    evaluator = "evaluator_id" if "evaluator_id" in body else "evaluator_slug"
    not_found = f"{_log_in_project(log_id)} (and the {evaluator}); {NOT_RECORDED_YET}"
    return Request("POST", f"/logs/{path_segment(log_id)}/scores/", not_found, body=body)


def list_logs(filters: dict[str, Any], params: dict[str, Any]) -> Request:
    """Every filter ANDed; paging and the time window go in the query."""
    body = {"filters": filters, "operator": "AND"}
    return Request("POST", "/request-logs/list/", _no_route("log list"), body=body, params=params)


def get_log(log_id: str) -> Request:
    not_found = f"no log has id '{log_id}' (find_logs finds logs by their identifiers); {NOT_RECORDED_YET}"
    return Request("GET", f"/request-logs/{path_segment(log_id)}/", not_found, max_answer=MAX_LOG_ANSWER)


def list_log_scores(log_id: str, page: int, page_size: int) -> Request:
    params = {"page": page, "page_size": page_size}
    return Request("GET", f"/logs/{path_segment(log_id)}/scores/", _log_in_project(log_id), params=params)


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
    params = {"page": page, "page_size": page_size, **({"search": search} if search else {})}
    return Request("GET", "/evaluators/", _no_route("evaluators"), params=params)


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
        self._in_flight: anyio.Semaphore | None = None
        self._http = httpx2.AsyncClient(
            base_url=config.api_url,
            # Only encodings this client decodes itself, within its bound (see _read).
            headers={"User-Agent": user_agent(), "Accept": "application/json", "Accept-Encoding": "gzip, deflate"},
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
        A slug is found by searching and keeping the exact match (the search also matches names)."""
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
        """The request's JSON answer, tried again as `policy` (the client's; the batch passes its own) allows."""
        policy, started, attempt = policy or self.retry, self.clock.now(), 0
        while True:
            attempt += 1
            try:
                return await self._attempt(request, caller)
            except RespanError as raised:
                error = raised.redacted(caller.secrets)
            wait = policy.delay(error, attempt)
            if wait is None or not policy.fits(self.clock.now() - started, wait, self.config.timeout):
                raise error  # its message says when to come back, where waiting would help
            failed = error.status or type(error).__name__
            path = redact(request.path, caller.secrets)
            logger.warning("Respan %s %s failed (%s); retry %d in %.1f s", request.method, path, failed, attempt, wait)
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
            if self._in_flight is None:  # made on first use, inside the event loop
                self._in_flight = anyio.Semaphore(max(1, self.config.max_concurrency))
            async with self._in_flight:  # bounded, so a burst of calls queues here instead of exhausting sockets
                # The whole request, connect to last byte: an API that drips its answer cannot hold a call.
                with anyio.fail_after(self.config.timeout if self.config.timeout > 0 else None):
                    response = await self._http.send(built, stream=True)
                    try:
                        content = await self._read(response, request, caller.secrets)
                    finally:
                        await response.aclose()
        except _TRANSPORT_FAILURES as exc:
            config = self.config
            raise error_from_exception(
                exc, base_url=config.base_url, timeout=config.timeout, method=request.method, sent=progress.sent
            ) from None
        # The body is read: hand the error mapping a plain, already-decoded response.
        headers = _plain_headers(response.headers)
        answer = httpx2.Response(response.status_code, headers=headers, content=content)
        if not answer.is_success:
            raise error_from_response(answer, request.not_found, caller.secrets)
        if not content:
            return None
        # A log can be tens of MB: its text is decoded once (as answer.text would), and its bytes, then its
        # text, are let go before the next step, so at most two forms of it are held at once.
        encoding = answer.encoding or "utf-8"
        text = content.decode(encoding, "replace")
        del answer, content
        try:
            data = json.loads(prune_json(text))
        except ValueError:
            answer = httpx2.Response(response.status_code, headers=headers, content=text.encode(encoding, "replace"))
            raise not_json(answer, caller.secrets, request.method) from None
        del text
        return readable_answer(data, caller.pieces, caller.secrets)

    async def _read(self, response: httpx2.Response, request: Request, secrets: tuple[str, ...]) -> bytes:
        """The decoded body, refused as soon as it passes the request's cap (a small gzip can inflate to gigabytes):
        decoded here, at most cap + 1 bytes out of each raw piece, so memory stays bounded."""
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
                    content += decoder.decompress(pending, cap + 1 - len(content)) if decoder else pending
                    pending = decoder.unconsumed_tail if decoder else b""
                    if len(content) > cap:
                        raise answer_too_large(response.status_code, method, cap, request_id(response, secrets))
            if decoder is not None:
                content += decoder.flush()
        except zlib.error as exc:  # a broken gzip: reported like httpx's own decoding errors
            raise httpx2.DecodingError(str(exc)) from None
        return bytes(content)


class _Progress:
    """Notes, from httpcore's trace events, whether the request left: a timeout before that is a connect failure."""

    traced = started_sending = False

    async def trace(self, event: str, info: dict[str, Any]) -> None:
        self.traced = True
        self.started_sending |= "send_request_headers" in event

    @property
    def sent(self) -> bool:
        # A transport that does not trace (a test's mock) may have let it through: say so.
        return self.started_sending or not self.traced


def _decoder(encoding: str) -> Any:
    """A zlib decompressor for the answer's Content-Encoding (gzip or deflate, the two we accept), or None."""
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return None
    if name in ("gzip", "x-gzip", "deflate"):  # + 16: a gzip header and trailer around the data, not zlib's
        return zlib.decompressobj(zlib.MAX_WBITS + (16 if "gzip" in name else 0))
    raise httpx2.DecodingError(f"unsupported Content-Encoding {name!r}")


def _plain_headers(headers: httpx2.Headers) -> list[tuple[bytes, bytes]]:
    """The answer's headers but those describing the encoded body (decoded already), as the raw bytes that came:
    a header whose value is not ASCII must not fail an answer that is read."""
    dropped = (b"content-encoding", b"content-length", b"transfer-encoding")
    return [(name, value) for name, value in headers.raw if name.lower() not in dropped]
