"""Every way a call can fail, as one root and one class per failure family, mapped once.

After openai-python's `_exceptions.py`: `RespanError` is the root of every failure a tool
call can meet, the API's (one class per status family, the request id kept), the
transport's (connection, timeout) and our own checks before sending (a missing key, a
value the evaluator cannot take). Each class says once whether anything was sent
(`sent`), so "Nothing was sent." is worded in one place (`RespanError.for_agent`); whether
a failure is worth trying again is the retry policy's call (`retry.py`), made from the
class alone.

`answers.py` turns what Respan or the transport gave back into these classes, once. Words
that come from the API (or a proxy in front of it) pass through `net.redact` before they are
clipped, so no piece of a key it echoes back can reach an agent or a log.
"""

from __future__ import annotations

from collections.abc import Iterable

from respan_mcp.net import redact

MAX_MESSAGE = 300
KEY_HELP = "set RESPAN_API_KEY to an API key from the Respan dashboard, or run `respan login`"
NOTHING_SENT = "Nothing was sent."


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

    def redacted(self, secrets: Iterable[str | None]) -> RespanError:
        """Itself, with every piece of a key cut out of its message (the API's words were redacted when read)."""
        message = str(self)
        if (cleaned := redact(message, secrets)) != message:
            self.args = (cleaned,)
        return self


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

    def __init__(self, from_caller: bool, placeholder: bool = False) -> None:
        where = (
            "check the Authorization header your MCP client sends"
            if from_caller
            else "set RESPAN_API_KEY to the key exactly as the Respan dashboard shows it"
        )
        if placeholder:
            super().__init__(
                "The Authorization header holds a placeholder such as ${RESPAN_API_KEY}, not a key: your MCP client "
                "did not expand the variable. Set it where the client runs (or write the key into the header), "
                "then restart the client"
            )
            return
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


def shown(text: str, secrets: Iterable[str | None], limit: int = MAX_MESSAGE) -> str:
    """API words as they may be shown: redacted, then clipped."""
    return _clip(redact(text, secrets), limit)


def _clip(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
