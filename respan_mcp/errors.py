"""Every way a request to Respan can fail, as one class per failure family, mapped once.

`error_from_response` is the only place that turns an HTTP status into an error; the
message of each is a sentence an agent can act on (what happened, what to do), and
never holds the key (the client also cuts the key out of anything the API echoes).
"""

from __future__ import annotations

import email.utils
import json
import re
import time

import httpx2

RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_MESSAGE = 300
PAGE_SUMMARY = 100  # a proxy's page is a hint, not the API's words: keep the whole message one short line
KEY_HELP = "set RESPAN_API_KEY to an API key from the Respan dashboard, or run `respan login`"


class RespanError(Exception):
    """Base of every failure talking to Respan; `str()` is the message for the agent."""

    status: int | None = None
    retryable: bool = False
    retry_after: float | None = None


class MissingAPIKeyError(RespanError):
    def __init__(self) -> None:
        super().__init__(f"No Respan API key is configured: {KEY_HELP}. Nothing was sent.")


class APIStatusError(RespanError):
    """The API answered with an error status."""

    def __init__(self, message: str, status: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.retryable = status in RETRY_STATUSES


class BadRequestError(APIStatusError):
    """400/422: the API refused the fields; its own messages are passed on."""


class AuthenticationError(APIStatusError):
    """401/403: the key is missing, wrong or not allowed."""


class NotFoundError(APIStatusError):
    """404: the log, score or evaluator does not exist."""


class RateLimitError(APIStatusError):
    """429: over the organisation's requests per minute."""


class ServerError(APIStatusError):
    """5xx, or an answer that is not the API's JSON."""


class APIConnectionError(RespanError):
    retryable = True


class APITimeoutError(RespanError):
    """The request was sent but no answer came in time: the write may or may not have happened."""


class InvalidIdError(RespanError):
    """An id that cannot be one path segment, so it is never sent."""


def api_message(response: httpx2.Response) -> str:
    """The API's own words from an error body (DRF `detail`, field lists, `error`), or a short summary."""
    try:
        body = response.json()
    except ValueError:
        return summarise_text(response.text) or response.reason_phrase
    if isinstance(body, dict):
        parts: list[str] = []
        if isinstance(body.get("detail"), str) and body["detail"] != "Validation error":
            parts.append(body["detail"])
        if isinstance(body.get("error"), str):
            parts.append(body["error"])
        fields = body.get("errors") if isinstance(body.get("errors"), dict) else body
        for name, messages in fields.items():
            if name in ("detail", "error", "retry_after"):
                continue
            if isinstance(messages, list):
                messages = " ".join(str(m) for m in messages)
            prefix = "" if name == "non_field_errors" else f"{name}: "
            parts.append(f"{prefix}{messages}")
        if parts:
            return _clip("; ".join(parts))
    return _clip(json.dumps(body))


def summarise_text(text: str) -> str:
    """One short line from an HTML or text body (a proxy's error page), never the whole page."""
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S)
    text = title.group(1) if title else re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.I | re.S)
    text = re.sub(r"<[^>]+>", " ", text)
    return _clip(" ".join(text.split()), PAGE_SUMMARY)


def _clip(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _retry_after(response: httpx2.Response) -> float | None:
    """Seconds the API asked us to wait: the `Retry-After` header or the body's `retry_after`."""
    header = response.headers.get("retry-after")
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(header) if header else None
            if parsed is not None:
                return max(0.0, parsed.timestamp() - time.time())
    try:
        body = response.json()
    except ValueError:
        return None
    value = body.get("retry_after") if isinstance(body, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def error_from_response(response: httpx2.Response, not_found: str) -> APIStatusError:
    """Map an error answer to its class and a message that says what to do next."""
    status = response.status_code
    detail = api_message(response)
    said = f"{status} {response.reason_phrase}: {detail}" if detail else f"{status} {response.reason_phrase}"
    if status in (400, 422):
        return BadRequestError(f"Respan refused the request ({said}). Correct the fields named and call again.", status)
    if status == 401:
        return AuthenticationError(f"Respan rejected the API key ({said}): {KEY_HELP}.", status)
    if status == 403:
        return AuthenticationError(f"The API key is not allowed to do this ({said}).", status)
    if status == 404:
        return NotFoundError(f"Respan found nothing there ({said}): {not_found}.", status)
    if status == 429:
        wait = _retry_after(response)
        when = f"retry after {wait:.0f} s" if wait is not None else "retry in a minute"
        return RateLimitError(
            f"Respan's rate limit was reached (429; 60 requests a minute per organisation): {when}.",
            status,
            retry_after=wait,
        )
    if status >= 500:
        return ServerError(
            f"The Respan API failed ({said}). Nothing needs changing on your side; retrying later is safe.",
            status,
            retry_after=_retry_after(response),
        )
    return APIStatusError(f"Respan answered {said}.", status)
