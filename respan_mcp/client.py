"""The Respan API client: one pooled HTTP client, retried by the one policy in `retry.py`.

Every failure is raised as a `RespanError` (see `errors.py`) whose message is a sentence an
agent can act on. Each request is bounded in time (connect to last byte) and in size (the
decoded answer), and nothing here ever puts the API key in a message, a log line or a repr.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import quote

import anyio
import httpx2

from respan_mcp.config import Config
from respan_mcp.errors import (
    MIB,
    InvalidIdError,
    InvalidKeyError,
    MissingAPIKeyError,
    RespanError,
    answer_too_large,
    error_from_exception,
    error_from_response,
    not_json,
    redact,
    request_id,
)
from respan_mcp.retry import Clock, EventLoopClock, RetryPolicy

logger = logging.getLogger(__name__)

MAX_ANSWER = 4 * MIB  # decoded bytes; a score answer is a few KB, a page of 100 scores well under 1 MiB

# What the transport may raise; each becomes a RespanError (errors.error_from_exception).
_TRANSPORT_FAILURES = (httpx2.RequestError, httpx2.InvalidURL, TimeoutError, OSError)


def package_version() -> str:
    try:
        return version("respan-mcp")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def path_segment(value: str) -> str:
    """Percent-encode one path segment so an id like `../x` or `a/b` can never leave its route.

    `.` and `..` are refused outright: encoded as `%2E%2E` they are still dot segments to any
    proxy that normalises URLs (RFC 3986), and no Respan id is one.
    """
    if value in (".", ".."):
        raise InvalidIdError(f"'{value}' is not a Respan id; use the id as Respan shows it. Nothing was sent.")
    return quote(value, safe="")


def log_scores_path(log_id: str) -> str:
    """The path of a log's scores, relative to the API base (`/api`)."""
    return f"/logs/{path_segment(log_id)}/scores/"


def score_path(score_id: str) -> str:
    """The path of one score, relative to the API base (`/api`)."""
    return f"/scores/{path_segment(score_id)}/"


class RespanClient:
    """The Respan score API over one pooled `httpx2.AsyncClient`, shared for the server's life.

    A per-call `api_key` (a caller's own key, over HTTP) wins over the configured one.
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
        self.retry = retry or RetryPolicy.from_config(config)
        self.clock: Clock = clock or EventLoopClock()
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

    async def upsert_log_score(
        self, log_id: str, body: dict[str, Any], *, api_key: str | None = None, max_retries: int | None = None
    ) -> Any:
        evaluator = "evaluator_id" if "evaluator_id" in body else "evaluator_slug"
        return await self.request(
            "POST",
            log_scores_path(log_id),
            json=body,
            api_key=api_key,
            not_found=f"check that log_id '{log_id}' is a log in this Respan project (and the {evaluator})",
            max_retries=max_retries,
        )

    async def update_score(
        self, score_id: str, body: dict[str, Any], *, api_key: str | None = None, max_retries: int | None = None
    ) -> Any:
        return await self._score_request("PATCH", score_id, json=body, api_key=api_key, max_retries=max_retries)

    async def get_score(self, score_id: str, *, api_key: str | None = None, max_retries: int | None = None) -> Any:
        return await self._score_request("GET", score_id, api_key=api_key, max_retries=max_retries)

    async def _score_request(self, method: str, score_id: str, **kwargs: Any) -> Any:
        not_found = (
            f"no score has id '{score_id}'; use the id a score write returned (list_log_scores lists a log's scores)"
        )
        return await self.request(method, score_path(score_id), not_found=not_found, **kwargs)

    def secrets(self, api_key: str | None = None) -> tuple[str | None, ...]:
        """Every key a message must never show a piece of: the caller's and the configured one."""
        return (api_key, self.config.api_key)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        api_key: str | None = None,
        not_found: str = "check the id",
        max_retries: int | None = None,
    ) -> Any:
        """Send one API request and return its JSON answer, trying again as the retry policy allows.

        `max_retries` overrides the policy's retries for this call (the batch engine retries itself).
        Raises a RespanError on failure.
        """
        key = api_key or self.config.api_key
        if not key:
            raise MissingAPIKeyError()
        if not _sendable(key):
            raise InvalidKeyError(from_caller=bool(api_key))
        secrets = self.secrets(api_key)
        policy = self.retry.with_retries(max_retries)
        started = self.clock.now()
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._attempt(method, path, json, params, key, not_found, secrets)
            except RespanError as raised:
                error = _redacted(raised, secrets)
            wait = policy.delay(attempt, error.retry_after) if error.retryable else None
            if wait is None or not policy.fits(self.clock.now() - started, wait, self.config.timeout):
                raise error  # its message says when to come back, where waiting would help
            logger.warning(
                "Respan %s %s failed (%s); retry %d in %.1f s",
                method,
                redact(path, secrets),
                error.status or type(error).__name__,
                attempt,
                wait,
            )
            await self.clock.sleep(wait)

    async def _attempt(
        self,
        method: str,
        path: str,
        body: Any,
        params: dict[str, Any] | None,
        key: str,
        not_found: str,
        secrets: tuple[str | None, ...],
    ) -> Any:
        """One try: the parsed answer, or a raised RespanError."""
        progress = _Progress()
        try:
            request = self._http.build_request(
                method,
                path,
                json=body,
                params=params,
                headers={"Authorization": f"Bearer {key}"},
                extensions={"trace": progress.trace},
            )
            async with self._slot():
                # The whole request, connect to last byte: an API that drips its answer cannot hold a call.
                with anyio.fail_after(self.config.timeout if self.config.timeout > 0 else None):
                    response = await self._http.send(request, stream=True)
                    try:
                        content = await self._read(response, method, secrets)
                    finally:
                        await response.aclose()
        except _TRANSPORT_FAILURES as exc:
            raise error_from_exception(
                exc, base_url=self.config.base_url, timeout=self.config.timeout, method=method, sent=progress.sent
            ) from None
        # The body is read: hand the error mapping a plain, already-decoded response.
        answer = httpx2.Response(response.status_code, headers=_plain_headers(response.headers), content=content)
        if not answer.is_success:
            raise error_from_response(answer, not_found, secrets)
        if not content:
            return None
        try:
            return answer.json()
        except ValueError:
            raise not_json(answer, secrets) from None

    async def _read(self, response: httpx2.Response, method: str, secrets: tuple[str | None, ...]) -> bytes:
        """The decoded body, refused as soon as it passes MAX_ANSWER (a small gzip can inflate to gigabytes).

        The raw bytes are decoded here, at most MAX_ANSWER + 1 bytes out of each piece, so memory
        stays bounded whatever one compressed chunk inflates to.
        """
        if response.is_stream_consumed:  # already in memory (a transport that answers with whole bodies)
            if len(response.content) > MAX_ANSWER:
                raise answer_too_large(response.status_code, method, MAX_ANSWER, request_id(response, secrets))
            return response.content
        declared = response.headers.get("content-length", "")
        decoder = _decoder(response.headers.get("content-encoding", ""))
        if decoder is None and declared.isdigit() and int(declared) > MAX_ANSWER:
            raise answer_too_large(response.status_code, method, MAX_ANSWER, request_id(response, secrets))
        content = bytearray()
        try:
            async for pending in response.aiter_raw():
                while pending:
                    if decoder is None:
                        content += pending
                        pending = b""
                    else:
                        content += decoder.decompress(pending, MAX_ANSWER + 1 - len(content))
                        pending = decoder.unconsumed_tail
                    if len(content) > MAX_ANSWER:
                        raise answer_too_large(response.status_code, method, MAX_ANSWER, request_id(response, secrets))
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


def _sendable(key: str) -> bool:
    """Printable ASCII without spaces: anything else cannot go in an HTTP header as it is, or is not a key."""
    return all(33 <= ord(char) <= 126 for char in key)


def _plain_headers(headers: httpx2.Headers) -> list[tuple[str, str]]:
    """The answer's headers without those that describe the encoded body (it is decoded already)."""
    dropped = ("content-encoding", "content-length", "transfer-encoding")
    return [(name, value) for name, value in headers.multi_items() if name.lower() not in dropped]


def _redacted(error: RespanError, secrets: tuple[str | None, ...]) -> RespanError:
    """The error with every piece of a key cut out of its message (the API's words were redacted when read)."""
    message = str(error)
    cleaned = redact(message, secrets)
    if cleaned != message:
        error.args = (cleaned,)
    return error
