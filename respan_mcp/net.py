"""The rules every module that sends, receives or shows a secret shares, each written once.

- Loopback: what counts as this machine (all of 127.0.0.0/8, ::1, localhost), the one place
  where plain http is allowed for a key, a token or a client secret.
- Header-safe: what an HTTP header value can carry (visible ASCII, 33..126).
- User-Agent: what every request of ours says it comes from, with the installed version.
- Secret pieces: no run of `SECRET_PIECE` characters of a secret is ever shown, in any of the
  forms an API or proxy may echo it in.
- Placeholders: text a host should have replaced (`${RESPAN_API_KEY}`, `%KEY%`, the README's
  `your-respan-api-key`) is not a key.
- Callers: a call's key and every secret it must not show, with their pieces (`Caller`).

A leaf module with no third-party imports: config, auth and the client all build on it.
"""

from __future__ import annotations

import html
import ipaddress
import json
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

SECRET_PIECE = 8  # no run of this many characters of a key is ever shown
# What would start a line of its own or move the cursor, in a log line or a text shown whole: C0 and C1
# controls, DEL, and the Unicode line and paragraph separators (some viewers break lines at them).
LINE_BREAKING = "[\x00-\x1f\x7f-\x9f\u2028\u2029]"
REDACTED = "[API key]"
LOOPBACK_TEXT = "127.0.0.0/8, ::1, localhost"  # how messages and docs name the loopback rule
ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)

# A variable a host left unexpanded, in the syntaxes hosts and shells write them in.
_VARIABLE_FORMS = (
    r"\$\{[^}]*\}?",  # ${RESPAN_API_KEY}, ${input:respan-api-key}, ${env:KEY}, or one cut short
    r"\$[A-Za-z_][A-Za-z0-9_]*",  # $RESPAN_API_KEY
    r"%[A-Za-z_][A-Za-z0-9_]*%",  # %RESPAN_API_KEY% (Windows)
    r"\{\{[^}]*\}\}",  # {{RESPAN_API_KEY}} (templates)
    r"<[^<>]*>",  # <your key>, <your Respan API key>
)
_PLACEHOLDER = re.compile(r"(?:bearer\s+)?(?:" + "|".join(_VARIABLE_FORMS) + r")", re.IGNORECASE)
# The example text of this project's own docs and manifests: "your-respan-api-key", "your-key",
# "REPLACE-WITH-YOUR-RESPAN-API-KEY", "your_api_key_here", ...
_EXAMPLE_WORDS = re.compile(r"(?:bearer\s+)?(?:replace[-_ ]?(?:with[-_ ]?)?)?your[-_ ].*|replace[-_ ]?me", re.IGNORECASE)


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine: localhost, any 127.x.y.z, ::1 (bracketed or not, or IPv4-mapped)."""
    host = host.strip().strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):  # RFC 6761: always this machine
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # a host name: it may resolve to anything
        return False
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return (mapped or address).is_loopback


def crosses_in_clear(url: str) -> bool:
    """An http:// URL to a host that is not loopback: what is sent to it crosses the network in clear text."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
    except ValueError:
        return False
    return parts.scheme.lower() == "http" and not is_loopback(host)


def is_secure_url(url: str) -> bool:
    """https, or http to a loopback host: the only URLs a key, a token or a client secret may go to."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        return False
    scheme = parts.scheme.lower()
    return bool(host) and (scheme == "https" or (scheme == "http" and not crosses_in_clear(url)))


def without_credentials(text: str) -> str:
    """`scheme://user:pass@host/...` -> `scheme://***@host/...`; everything before the last @ is masked."""
    if "@" not in text:
        return text
    scheme, _, rest = text.partition("://") if "://" in text.split("@")[0] else ("", "", text)
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}" if scheme else f"***@{rest.rsplit('@', 1)[1]}"


def header_safe(value: str) -> bool:
    """Visible ASCII only (33..126): what an HTTP header value can carry without being refused or split.

    A key holding anything else (a space, a line break, a curly quote from a document) is not a
    key as issued, and would be refused by the HTTP library or split into two headers.
    """
    return all(33 <= ord(char) <= 126 for char in value)


def package_version() -> str:
    """The installed distribution's version: the server's in `initialize`, and the User-Agent's."""
    try:
        return version("respan-mcp")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def user_agent() -> str:
    """Every HTTP client of ours (to Respan, to an identity provider) sends it."""
    return f"respan-mcp/{package_version()}"


def is_placeholder(text: str) -> bool:
    """Whether `text` (a key, or an Authorization header's value) is a placeholder, not a key.

    A host that does not expand `${RESPAN_API_KEY}` (or an unset variable in Claude Code's
    `.mcp.json`) passes the text on as it is; so does a user who pasted a config without putting
    their key in. Sent to Respan it would only come back as a confusing 401.
    """
    text = text.strip()
    return bool(text) and bool(_PLACEHOLDER.fullmatch(text) or _EXAMPLE_WORDS.fullmatch(text))


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every run of SECRET_PIECE or more characters of any secret replaced by [API key].

    Any piece counts, not only the whole key: an API or proxy may echo a key clipped,
    URL-encoded (`?token=...`), HTML- or JSON-escaped, or in another letter case. Call it
    on the whole text before clipping, so a key cut at the clip point is still caught.
    """
    pieces = {piece for secret in secrets if secret for piece in _pieces(secret)}
    if not pieces or not text:
        return text
    haystack = text.translate(ASCII_LOWER)  # not lower(): that may change the length of non-ASCII text
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


def redact_json(value: Any, secrets: Iterable[str | None]) -> Any:
    """Parsed JSON with `redact` applied to every string in it, names of fields included."""
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {redact(name, secrets): redact_json(item, secrets) for name, item in value.items()}
    if isinstance(value, list):
        return [redact_json(item, secrets) for item in value]
    return value


def shares_a_piece(text: str, secrets: Iterable[str | None]) -> bool:
    """Whether `text` holds a piece of any secret, by `redact`'s rule: such text is never shown."""
    return redact(text, secrets) != text


def pieces_of(secrets: Iterable[str | None]) -> frozenset[bytes]:
    """Every piece `redact` looks for, of every secret, in lower case (ASCII_LOWER) and as UTF-8: worked out
    once per caller, in the form a text's lowered UTF-8 is searched for them (`results.readable_answer`)."""
    return frozenset(
        piece.encode("utf-8", "surrogatepass") for secret in secrets if secret for piece in _pieces(secret)
    )


def _pieces(secret: str) -> set[str]:
    forms = {secret, quote(secret, safe=""), quote_plus(secret), html.escape(secret), json.dumps(secret)[1:-1]}
    pieces: set[str] = set()
    for form in forms:
        form = form.translate(ASCII_LOWER)
        size = min(SECRET_PIECE, len(form))
        pieces.update(form[i : i + size] for i in range(len(form) - size + 1))
    return pieces


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
    pieces: frozenset[bytes] = field(default=frozenset(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.pieces:
            object.__setattr__(self, "pieces", pieces_of(self.secrets))
