"""What Respan (or the transport on the way) gave back, read into the error that says what to do.

The one mapping: `error_from_response` turns an HTTP answer into its class in `errors.py`,
`error_from_exception` a transport failure. The API's words are redacted, then clipped.
"""

from __future__ import annotations

import email.utils
import html
import json
import math
import re
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import httpx2

from respan_mcp.errors import (
    KEY_HELP,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BaseURLError,
    ConnectionSetupError,
    InternalServerError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RedirectError,
    RespanError,
    UnexpectedAnswerError,
    shown,
)

PAGE_SUMMARY = 100  # a proxy's page is a hint, not the API's words: keep the whole message one short line
REQUEST_ID_SHOWN = 64
MIB = 1024 * 1024
LONGEST_RETRY_AFTER = 86_400.0  # a day: a longer ask is read as a day, so a message never shows a 300-digit wait
_SECONDS = re.compile(r"\d+(\.\d+)?")


def api_message(response: httpx2.Response, secrets: Iterable[str | None] = ()) -> str:
    """The API's own words from an error body (DRF `detail`, field lists, `error`), or a short summary.

    A body nested deeper than the JSON parser (or `str` of what it parsed) goes raises their own
    RecursionError, before the stack is at risk: such a body is summarised as text."""
    secrets = tuple(secrets)
    try:
        return _api_words(response, secrets)
    except RecursionError:
        return summarise_text(response.text, secrets) or response.reason_phrase


def _api_words(response: httpx2.Response, secrets: tuple[str | None, ...]) -> str:
    try:
        body = response.json()
    except ValueError:
        return summarise_text(response.text, secrets) or response.reason_phrase
    if isinstance(body, dict):
        parts: list[str] = []
        if isinstance(body.get("detail"), str) and body["detail"] != "Validation error":
            parts.append(body["detail"])
        if isinstance(body.get("error"), str):
            parts.append(body["error"])
        fields: dict[str, Any] = body["errors"] if isinstance(body.get("errors"), dict) else body
        for name, messages in fields.items():
            if name in ("detail", "error", "retry_after"):
                continue
            if isinstance(messages, list):
                messages = " ".join(str(m) for m in messages)
            prefix = "" if name == "non_field_errors" else f"{name}: "
            parts.append(f"{prefix}{messages}")
        if parts:
            return shown("; ".join(parts), secrets)
    return shown(json.dumps(body), secrets)


def summarise_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """One short line from an HTML or text body (a proxy's error page), never the whole page."""
    text = text[: 64 * 1024]  # the line comes from the top of a page; redaction still sees every kept piece
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S)
    text = title.group(1) if title else re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.I | re.S)
    text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    return shown(" ".join(text.split()), secrets, PAGE_SUMMARY)


def request_id(response: httpx2.Response, secrets: Iterable[str | None] = ()) -> str | None:
    """Respan's id for this request (`X-Request-ID` or `Request-Id`), when it sent a printable one."""
    given = response.headers.get("x-request-id") or response.headers.get("request-id") or ""
    given = given.strip()
    if not given or not given.isascii() or not given.isprintable():
        return None
    return shown(given, secrets, REQUEST_ID_SHOWN)


def _retry_after(response: httpx2.Response) -> float | None:
    """Seconds the API asked us to wait: a readable `Retry-After` header, else the body's `retry_after`."""
    from_header = parse_retry_after(response.headers.get("retry-after"))
    if from_header is not None:
        return from_header
    try:
        body = response.json()
    except (ValueError, RecursionError):  # not JSON, or nested past what the parser goes
        return None
    return parse_retry_after(body.get("retry_after")) if isinstance(body, dict) else None


def error_from_response(
    response: httpx2.Response, not_found: str, secrets: Iterable[str | None] = ()
) -> APIStatusError:
    """Map an error answer to its class and a message that says what to do next."""
    secrets = tuple(secrets)
    status = response.status_code
    rid = request_id(response, secrets)
    if 300 <= status < 400:
        return RedirectError(_redirect_message(response, secrets), status, request_id=rid)
    detail = api_message(response, secrets)
    said = f"{status} {response.reason_phrase}: {detail}" if detail else f"{status} {response.reason_phrase}"
    if status in (400, 409, 422):
        return BadRequestError(
            f"Respan refused the request ({said}). Correct the fields named and call again.", status, request_id=rid
        )
    if status == 401:
        return AuthenticationError(f"Respan rejected the API key ({said}): {KEY_HELP}.", status, request_id=rid)
    if status == 403:
        return PermissionDeniedError(
            f"The API key is valid but not allowed to do this ({said}): use a key of the Respan project with "
            "permission to read and write scores, or ask its admin for one.",
            status,
            request_id=rid,
        )
    if status == 404:
        return NotFoundError(f"Respan found nothing there ({said}): {not_found}.", status, request_id=rid)
    if status == 429:
        wait = _retry_after(response)
        when = f"retry after {wait:.0f} s" if wait is not None else "retry in a minute"
        return RateLimitError(
            f"Respan's rate limit was reached (429; 60 requests a minute per organisation): {when}.",
            status,
            retry_after=wait,
            request_id=rid,
        )
    if status >= 500:
        return InternalServerError(
            f"The Respan API failed ({said}). Nothing needs changing on your side; retrying later is safe.",
            status,
            retry_after=_retry_after(response),
            request_id=rid,
        )
    return APIStatusError(f"Respan answered {said}.", status, request_id=rid)


def _redirect_message(response: httpx2.Response, secrets: tuple[str | None, ...]) -> str:
    location = response.headers.get("location") or ""
    parts = urlsplit(location) if location.isascii() else None
    target = f"{parts.scheme}://{parts.netloc}" if parts and parts.scheme in ("http", "https") and parts.netloc else ""
    where = f" to {shown(target, secrets, 100)}" if target else ""
    return (
        f"The Respan base URL redirects ({response.status_code}{where}), and redirects are never followed (the API key "
        "would go along): set RESPAN_BASE_URL to the API host itself, e.g. https://api.respan.ai."
    )


def not_json(
    response: httpx2.Response, secrets: Iterable[str | None] = (), method: str | None = None
) -> UnexpectedAnswerError:
    """A success status whose body is not JSON: usually a login page or a proxy, not the API.

    After a write (`method` POST or PATCH) it says the write went through: the status says so."""
    secrets = tuple(secrets)
    wrote = (
        " The write itself went through (Respan answered with success): list_log_scores shows what was stored."
        if method in ("POST", "PATCH")
        else ""
    )
    return UnexpectedAnswerError(
        f"The Respan API answered {response.status_code} with something that is not JSON "
        f"({summarise_text(response.text, secrets)}); check RESPAN_BASE_URL.{wrote}",
        response.status_code,
        request_id=request_id(response, secrets),
    )


def answer_too_large(status: int, method: str, limit: int, rid: str | None) -> UnexpectedAnswerError:
    wrote = " The write itself went through." if method in ("POST", "PATCH") and 200 <= status < 300 else ""
    return UnexpectedAnswerError(
        f"The Respan API's answer ({status}) was larger than {limit // MIB} MiB, far larger than any score "
        f"answer, so it was not read to the end: check that RESPAN_BASE_URL points at the Respan API.{wrote}",
        status,
        request_id=rid,
    )


# -- transport failures ----------------------------------------------------------------------------

# Transport failures where the connection failed or dropped, or nothing answered in time: an
# APIConnectionError, which the retry policy may try again. (A wrong URL scheme, a TLS failure or
# an undecodable answer cannot get better.)
_DROPPED: tuple[type[BaseException], ...] = (
    httpx2.TimeoutException,
    httpx2.NetworkError,
    httpx2.RemoteProtocolError,
    ConnectionError,  # a transport that lets the socket's own error through
    TimeoutError,  # our own whole-request deadline
)


def error_from_exception(exc: BaseException, *, base_url: str, timeout: float, method: str, sent: bool) -> RespanError:
    """What the transport raised, as the RespanError that says what to do. Never quotes the request.

    `sent` says whether the request had left (so a timeout may have let a write through).
    """
    if isinstance(exc, httpx2.InvalidURL):
        return InvalidRequestError(
            "The request could not be built: its URL is not valid (an id or search term far too long, or with "
            "characters no URL can carry). Use the id as Respan shows it"
        )
    if isinstance(exc, httpx2.UnsupportedProtocol):
        return BaseURLError(
            f"RESPAN_BASE_URL '{base_url}' is not an http(s) URL; set it to the API host, e.g. https://api.respan.ai"
        )
    if isinstance(exc, httpx2.LocalProtocolError):
        return InvalidRequestError(
            "The request could not be sent: a header holds a character HTTP does not allow (check that the API "
            "key has no spaces or line breaks)"
        )
    if isinstance(exc, httpx2.ConnectTimeout) or (isinstance(exc, TimeoutError) and not sent):
        return APIConnectionError(f"Could not connect to the Respan API at {base_url} in time.")
    if isinstance(exc, httpx2.TimeoutException | TimeoutError):
        if method in ("POST", "PATCH", "PUT", "DELETE"):
            return APITimeoutError(
                f"The Respan API did not answer within {timeout:g} s; the score may or may not have been written. "
                "Calling again is safe: writes are idempotent."
            )
        return APITimeoutError(f"The Respan API did not answer within {timeout:g} s; try again in a moment.")
    if isinstance(exc, httpx2.DecodingError):
        return ConnectionSetupError(
            f"The Respan API's answer could not be decoded ({type(exc).__name__}); check RESPAN_BASE_URL "
            "and any proxy in between."
        )
    reach = f"Could not reach the Respan API at {base_url} ({type(exc).__name__}); check RESPAN_BASE_URL and the network."
    return APIConnectionError(reach) if isinstance(exc, _DROPPED) else ConnectionSetupError(reach)


# -- waits the API asks for --------------------------------------------------------------------------


def parse_retry_after(value: object, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a `Retry-After` header or a body's `retry_after`; None when unreadable.

    Readable: a non-negative number of seconds (`30`, `1.5`) or an HTTP date in the future.
    Anything else (`soon`, `0x10`, `inf`, `nan`, `-5`, a date already past) is None, and the
    caller falls back to its own backoff rather than failing on the API's odd header.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        seconds = float(min(value, LONGEST_RETRY_AFTER))  # a 400-digit int is past what a float holds
    elif isinstance(value, float):
        seconds = value
    elif isinstance(value, str):
        text = value.strip()
        if _SECONDS.fullmatch(text):
            seconds = min(float(text), LONGEST_RETRY_AFTER)  # 400 digits read as inf: that is a long wait
        else:
            until = _date_seconds(text, now)
            if until is None or until <= 0:
                return None
            seconds = until
    else:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, LONGEST_RETRY_AFTER)


def _date_seconds(text: str, now: Callable[[], float]) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None or when.tzinfo is None:  # RFC 9110 dates are GMT; a zoneless one is not one of them
        return None
    try:
        return when.timestamp() - now()
    except (OverflowError, OSError, ValueError):
        return None
