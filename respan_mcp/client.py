"""The Respan API client: one pooled HTTP client, retries where they are safe.

Every failure becomes a `RespanError` (see `errors.py`) whose message is a sentence an
agent can act on. Nothing here ever puts the API key in a message, a log line or a repr.
"""

from __future__ import annotations

import logging
import random
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import quote

import anyio
import httpx2

from respan_mcp.config import Config
from respan_mcp.errors import (
    APIConnectionError,
    APITimeoutError,
    InvalidIdError,
    MissingAPIKeyError,
    RespanError,
    ServerError,
    error_from_response,
    summarise_text,
)

logger = logging.getLogger(__name__)


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


class RespanClient:
    """The Respan score API over one pooled `httpx2.AsyncClient`, shared for the server's life.

    A per-call `api_key` (a caller's own key, over HTTP) wins over the configured one.
    Writes are retried only where it is safe: both are idempotent (the upsert is
    keyed by log, evaluator and scorer; PATCH sets values).
    """

    def __init__(
        self,
        config: Config,
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
        max_retry_wait: float = 20.0,
    ) -> None:
        self.config = config
        self.max_retry_wait = max_retry_wait
        self._in_flight: anyio.Semaphore | None = None  # made on first use, inside the event loop
        self._http = httpx2.AsyncClient(
            base_url=config.api_url,
            headers={"User-Agent": f"respan-mcp/{package_version()}", "Accept": "application/json"},
            timeout=httpx2.Timeout(config.timeout, connect=min(config.timeout, 10.0)),
            transport=transport,
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
            f"/logs/{path_segment(log_id)}/scores/",
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
        return await self.request(method, f"/scores/{path_segment(score_id)}/", not_found=not_found, **kwargs)

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
        """Send one API request, retrying connection errors, 429 and 502-504 with backoff."""
        key = api_key or self.config.api_key
        if not key:
            raise MissingAPIKeyError()
        retries = self.config.max_retries if max_retries is None else max_retries
        headers = {"Authorization": f"Bearer {key}"}
        attempt = 0
        while True:
            error = await self._attempt(method, path, json, params, headers, not_found)
            if not isinstance(error, RespanError):
                return error
            if not error.retryable or attempt >= retries:
                raise _without_key(error, key)
            delay = error.retry_after if error.retry_after is not None else _backoff(attempt)
            if delay > self.max_retry_wait:
                raise _without_key(error, key)  # its message already says when to retry
            logger.warning("Respan %s %s failed (%s); retry %d in %.1f s", method, path, error.status, attempt + 1, delay)
            await anyio.sleep(delay)
            attempt += 1

    async def _attempt(
        self,
        method: str,
        path: str,
        body: Any,
        params: dict[str, Any] | None,
        headers: dict[str, str],
        not_found: str,
    ) -> Any:
        """One try: the parsed answer, or the RespanError it came to (returned, so the caller decides)."""
        if self._in_flight is None:
            self._in_flight = anyio.Semaphore(max(1, self.config.max_concurrency))
        try:
            # Bounded, so a burst of calls queues here instead of exhausting sockets.
            async with self._in_flight:
                response = await self._http.request(method, path, json=body, params=params, headers=headers)
        except httpx2.ConnectTimeout:
            return APIConnectionError(f"Could not connect to the Respan API at {self.config.base_url} in time.")
        except httpx2.TimeoutException:
            return APITimeoutError(
                f"The Respan API did not answer within {self.config.timeout:g} s; the score may or may not have "
                "been written. Calling again is safe: writes are idempotent."
            )
        except httpx2.UnsupportedProtocol:
            error = APIConnectionError(
                f"RESPAN_BASE_URL '{self.config.base_url}' is not an http(s) URL; set it to the API host, "
                "e.g. https://api.respan.ai."
            )
            error.retryable = False  # no retry can fix a wrong setting
            return error
        except httpx2.TransportError as exc:
            return APIConnectionError(
                f"Could not reach the Respan API at {self.config.base_url} ({type(exc).__name__}); "
                "check RESPAN_BASE_URL and the network."
            )
        if response.is_success:
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError:
                return ServerError(
                    f"The Respan API answered {response.status_code} with something that is not JSON "
                    f"({summarise_text(response.text)}); check RESPAN_BASE_URL.",
                    response.status_code,
                )
        return error_from_response(response, not_found)


def _without_key(error: RespanError, key: str) -> RespanError:
    """The error, with the key cut out of the API's words: some servers and proxies echo the token back."""
    if key in str(error):
        error.args = (str(error).replace(key, "[API key]"),)
    return error


def _backoff(attempt: int) -> float:
    """Exponential backoff with jitter: about 0.25 s, 0.5 s, 1 s, ..."""
    return 0.25 * (2**attempt) * random.uniform(0.5, 1.5)
