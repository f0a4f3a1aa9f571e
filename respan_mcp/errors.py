"""Every way a request to Respan can fail, as one class per failure family, mapped once.

`error_from_response` is the only place that turns an HTTP answer into an error and
`error_from_exception` the only place that turns a transport failure into one; the message
of each is a sentence an agent can act on (what happened, what to do). Words that come from
the API (or a proxy in front of it) pass through `redact` before they are clipped, so no
piece of a key it echoes back can reach an agent or a log.
"""

from __future__ import annotations

import html
import json
import re
import string
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

import httpx2

from respan_mcp.retry import parse_retry_after, retryable_exception, retryable_status

MAX_MESSAGE = 300
PAGE_SUMMARY = 100  # a proxy's page is a hint, not the API's words: keep the whole message one short line
REQUEST_ID_SHOWN = 64
KEY_HELP = "set RESPAN_API_KEY to an API key from the Respan dashboard, or run `respan login`"
SECRET_PIECE = 8  # no run of this many characters of a key is ever shown
REDACTED = "[API key]"
MIB = 1024 * 1024
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


class RespanError(Exception):
    """Base of every failure talking to Respan; `str()` is the message for the agent."""

    status: int | None = None
    retryable: bool = False
    retry_after: float | None = None
    request_id: str | None = None  # Respan's id for the request, when it sent one: quote it to Respan support


class MissingAPIKeyError(RespanError):
    def __init__(self) -> None:
        super().__init__(f"No Respan API key is configured: {KEY_HELP}. Nothing was sent.")


class InvalidKeyError(MissingAPIKeyError):
    """A key that cannot go in an HTTP header (whitespace, control or non-ASCII characters): no usable key."""

    def __init__(self, from_caller: bool) -> None:
        where = (
            "check the Authorization header your MCP client sends"
            if from_caller
            else "set RESPAN_API_KEY to the key exactly as the Respan dashboard shows it"
        )
        RespanError.__init__(
            self,
            "The API key has a character that cannot be sent in an HTTP header (a space, a line break, a control "
            f"or a non-ASCII character): {where}. Nothing was sent.",
        )


class APIStatusError(RespanError):
    """The API answered with an error status."""

    def __init__(
        self, message: str, status: int, retry_after: float | None = None, request_id: str | None = None
    ) -> None:
        super().__init__(message + (f" (Respan request id {request_id})" if request_id else ""))
        self.status = status
        self.retry_after = retry_after
        self.request_id = request_id
        self.retryable = retryable_status(status)


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


class AnswerTooLargeError(ServerError):
    """An answer past the client's cap: not read to the end, and not worth asking for again."""

    retryable = False

    def __init__(self, message: str, status: int, request_id: str | None = None) -> None:
        super().__init__(message, status, request_id=request_id)
        self.retryable = False


class RedirectError(APIStatusError):
    """3xx: the base URL points somewhere that moved. Never followed: the key would go along."""


class APIConnectionError(RespanError):
    retryable = True


class APITimeoutError(RespanError):
    """The request was sent but no answer came in time: the write may or may not have happened."""

    retryable = True  # every write is idempotent, so sending it again is safe


class InvalidRequestError(RespanError):
    """A request that cannot be built (a URL far too long), so it is never sent."""


class InvalidIdError(InvalidRequestError):
    """An id that cannot be one path segment, so it is never sent."""


# -- redaction -------------------------------------------------------------------------------------


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every run of SECRET_PIECE or more characters of any secret replaced by [API key].

    Any piece counts, not only the whole key: an API or proxy may echo a key clipped,
    URL-encoded (`?token=...`), HTML- or JSON-escaped, or in another letter case. Call it
    on the whole text before clipping, so a key cut at the clip point is still caught.
    """
    pieces = {piece for secret in secrets if secret for piece in _pieces(secret)}
    if not pieces or not text:
        return text
    haystack = text.translate(_ASCII_LOWER)  # not lower(): that may change the length of non-ASCII text
    hidden = bytearray(len(text))
    for piece in pieces:
        start = haystack.find(piece)
        while start != -1:
            hidden[start : start + len(piece)] = b"\1" * len(piece)
            start = haystack.find(piece, start + 1)
    if not any(hidden):
        return text
    out: list[str] = []
    for index, char in enumerate(text):
        if not hidden[index]:
            out.append(char)
        elif index == 0 or not hidden[index - 1]:
            out.append(REDACTED)
    return "".join(out)


def _pieces(secret: str) -> set[str]:
    forms = {secret, quote(secret, safe=""), quote_plus(secret), html.escape(secret), json.dumps(secret)[1:-1]}
    pieces: set[str] = set()
    for form in forms:
        form = form.translate(_ASCII_LOWER)
        size = min(SECRET_PIECE, len(form))
        pieces.update(form[i : i + size] for i in range(len(form) - size + 1))
    return pieces


def shown(text: str, secrets: Iterable[str | None], limit: int = MAX_MESSAGE) -> str:
    """API words as they may be shown: redacted, then clipped."""
    return _clip(redact(text, secrets), limit)


def _clip(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- answers ---------------------------------------------------------------------------------------


def api_message(response: httpx2.Response, secrets: Iterable[str | None] = ()) -> str:
    """The API's own words from an error body (DRF `detail`, field lists, `error`), or a short summary."""
    secrets = tuple(secrets)
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
    except ValueError:
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
    if status in (400, 422):
        return BadRequestError(
            f"Respan refused the request ({said}). Correct the fields named and call again.", status, request_id=rid
        )
    if status == 401:
        return AuthenticationError(f"Respan rejected the API key ({said}): {KEY_HELP}.", status, request_id=rid)
    if status == 403:
        return AuthenticationError(f"The API key is not allowed to do this ({said}).", status, request_id=rid)
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
        return ServerError(
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


def not_json(response: httpx2.Response, secrets: Iterable[str | None] = ()) -> ServerError:
    """A success status whose body is not JSON: usually a login page or a proxy, not the API."""
    secrets = tuple(secrets)
    return ServerError(
        f"The Respan API answered {response.status_code} with something that is not JSON "
        f"({summarise_text(response.text, secrets)}); check RESPAN_BASE_URL.",
        response.status_code,
        request_id=request_id(response, secrets),
    )


def answer_too_large(status: int, method: str, limit: int, rid: str | None) -> AnswerTooLargeError:
    wrote = " The write itself went through." if method in ("POST", "PATCH") and 200 <= status < 300 else ""
    return AnswerTooLargeError(
        f"The Respan API's answer ({status}) was larger than {limit // MIB} MiB, far larger than any score "
        f"answer, so it was not read to the end: check that RESPAN_BASE_URL points at the Respan API.{wrote}",
        status,
        request_id=rid,
    )


# -- transport failures ----------------------------------------------------------------------------


def error_from_exception(exc: BaseException, *, base_url: str, timeout: float, method: str, sent: bool) -> RespanError:
    """What the transport raised, as the RespanError that says what to do. Never quotes the request.

    `sent` says whether the request had left (so a timeout may have let a write through).
    """
    error: RespanError
    if isinstance(exc, httpx2.InvalidURL):
        error = InvalidRequestError(
            "The request could not be built: its URL is not valid (an id or search term far too long, or with "
            "characters no URL can carry). Use the id as Respan shows it. Nothing was sent."
        )
    elif isinstance(exc, httpx2.UnsupportedProtocol):
        error = APIConnectionError(
            f"RESPAN_BASE_URL '{base_url}' is not an http(s) URL; set it to the API host, e.g. https://api.respan.ai."
        )
        error.retryable = False  # no retry can fix a wrong setting
    elif isinstance(exc, httpx2.LocalProtocolError):
        error = InvalidRequestError(
            "The request could not be sent: a header holds a character HTTP does not allow (check that the API "
            "key has no spaces or line breaks). Nothing was sent."
        )
    elif isinstance(exc, httpx2.ConnectTimeout) or (isinstance(exc, TimeoutError) and not sent):
        error = APIConnectionError(f"Could not connect to the Respan API at {base_url} in time.")
    elif isinstance(exc, httpx2.TimeoutException | TimeoutError):
        if method in ("POST", "PATCH", "PUT", "DELETE"):
            error = APITimeoutError(
                f"The Respan API did not answer within {timeout:g} s; the score may or may not have been written. "
                "Calling again is safe: writes are idempotent."
            )
        else:
            error = APITimeoutError(f"The Respan API did not answer within {timeout:g} s; try again in a moment.")
    elif isinstance(exc, httpx2.DecodingError):
        error = APIConnectionError(
            f"The Respan API's answer could not be decoded ({type(exc).__name__}); check RESPAN_BASE_URL "
            "and any proxy in between."
        )
        error.retryable = False
    else:
        error = APIConnectionError(
            f"Could not reach the Respan API at {base_url} ({type(exc).__name__}); "
            "check RESPAN_BASE_URL and the network."
        )
        error.retryable = retryable_exception(exc)
    return error
