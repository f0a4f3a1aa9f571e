"""Every way a call can fail, as one root and one class per failure family, mapped once.

After openai-python's `_exceptions.py`: `RespanError` is the root of every failure a tool
call can meet, the API's (one class per status family, the request id kept), the
transport's (connection, timeout) and our own checks before sending (a missing key, a
value the evaluator cannot take). Each class says once whether anything was sent
(`sent`), so "Nothing was sent." is worded in one place (`RespanError.for_agent`); whether
a failure is worth trying again is the retry policy's call (`retry.py`), made from the
class alone.

`answers.py` turns what Respan or the transport gave back into these classes, once. Words
that come from the API (or a proxy in front of it) pass through `redact` before they are
clipped, so no piece of a key it echoes back can reach an agent or a log.
"""

from __future__ import annotations

import html
import json
import string
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MAX_MESSAGE = 300
KEY_HELP = "set RESPAN_API_KEY to an API key from the Respan dashboard, or run `respan login`"
NOTHING_SENT = "Nothing was sent."
SECRET_PIECE = 8  # no run of this many characters of a key is ever shown
REDACTED = "[API key]"
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


class RespanError(Exception):
    """Root of every failure a tool call can meet; `str()` is the message, `for_agent()` what the agent reads.

    `sent` is False when the failure came before anything left for Respan, True when the
    request reached Respan (it may have acted on it), None when that cannot be told.
    """

    sent: bool | None = None
    status: int | None = None
    retry_after: float | None = None
    request_id: str | None = None  # Respan's id for the request, when it sent one: quote it to Respan support

    def for_agent(self) -> str:
        message = str(self)
        return f"{message.rstrip('.')}. {NOTHING_SENT}" if self.sent is False else message


# -- before anything is sent ------------------------------------------------------------------------


class NotSentError(RespanError):
    """Refused by our own checks: nothing left for Respan."""

    sent = False


class KeyUnusableError(NotSentError):
    """No key this call may use: every request of the call would fail the same way."""


class MissingAPIKeyError(KeyUnusableError):
    def __init__(self) -> None:
        super().__init__(f"No Respan API key is configured: {KEY_HELP}")


class InvalidKeyError(KeyUnusableError):
    """A key that cannot go in an HTTP header (whitespace, control or non-ASCII characters): no usable key."""

    def __init__(self, from_caller: bool) -> None:
        where = (
            "check the Authorization header your MCP client sends"
            if from_caller
            else "set RESPAN_API_KEY to the key exactly as the Respan dashboard shows it"
        )
        super().__init__(
            "The API key has a character that cannot be sent in an HTTP header (a space, a line break, a control "
            f"or a non-ASCII character): {where}"
        )


class KeyRefused(KeyUnusableError):
    """This caller may not use the server's key and sent none of its own; `str()` says what to do."""


class ScoreValueError(NotSentError, ValueError):
    """A score that cannot be sent as given; the message says what to send instead."""


class InvalidRequestError(NotSentError):
    """A request that cannot be built (an id that is no path segment, a URL far too long)."""


class BaseURLError(NotSentError):
    """RESPAN_BASE_URL is not an http(s) URL: no retry can fix a wrong setting."""


# -- Respan answered ---------------------------------------------------------------------------------


class APIStatusError(RespanError):
    """The API answered with an error status."""

    sent = True

    def __init__(
        self, message: str, status: int, retry_after: float | None = None, request_id: str | None = None
    ) -> None:
        super().__init__(message + (f" (Respan request id {request_id})" if request_id else ""))
        self.status = status
        self.retry_after = retry_after
        self.request_id = request_id


class BadRequestError(APIStatusError):
    """400, 409 or 422: the API refused the fields; its own messages are passed on."""


class AuthenticationError(APIStatusError):
    """401: the key is missing or wrong."""


class PermissionDeniedError(APIStatusError):
    """403: the key is valid but not allowed to do this."""


class NotFoundError(APIStatusError):
    """404: the log, score or evaluator does not exist."""


class RateLimitError(APIStatusError):
    """429: over the organisation's requests per minute."""


class InternalServerError(APIStatusError):
    """5xx: the API or a proxy in front of it failed."""


class RedirectError(APIStatusError):
    """3xx: the base URL points somewhere that moved. Never followed: the key would go along."""


class UnexpectedAnswerError(RespanError):
    """An answer that is not the API's JSON: not JSON at all, past the size cap, or not what was asked for."""

    sent = True

    def __init__(self, message: str, status: int | None = None, request_id: str | None = None) -> None:
        super().__init__(message + (f" (Respan request id {request_id})" if request_id else ""))
        self.status = status
        self.request_id = request_id


class NotAScoreError(UnexpectedAnswerError):
    """The API answered, but not with a score; the message says what that means for the agent."""


def refuses_key(error: RespanError) -> bool:
    """Whether the key itself failed (no usable key, or 401): the rest of the call would fail the same way.

    A 403 is not: a key may be allowed to write scores without being allowed to read evaluators.
    """
    return isinstance(error, KeyUnusableError | AuthenticationError)


# -- the transport -----------------------------------------------------------------------------------


class APIConnectionError(RespanError):
    """The connection failed or dropped, or no answer came in time."""


class APITimeoutError(APIConnectionError):
    """The request was sent but no answer came in time: the write may or may not have happened."""


class ConnectionSetupError(RespanError):
    """The connection could not be made in a way no retry fixes (TLS, an undecodable answer)."""


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
