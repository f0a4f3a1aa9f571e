"""The rules every module that sends, receives or shows a secret shares, each written once.

- Loopback: what counts as this machine (all of 127.0.0.0/8, ::1, localhost), the one place
  where plain http is allowed for a key, a token or a client secret.
- Header-safe: what an HTTP header value can carry (visible ASCII, 33..126).
- Secret pieces: no run of `SECRET_PIECE` characters of a secret is ever shown, in any of the
  forms an API or proxy may echo it in.
- Placeholders: text a host should have replaced (`${RESPAN_API_KEY}`, `%KEY%`, the README's
  `your-respan-api-key`) is not a key.

A leaf module with no third-party imports: config, auth and the client all build on it.
"""

from __future__ import annotations

import html
import ipaddress
import json
import re
import string
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

SECRET_PIECE = 8  # no run of this many characters of a key is ever shown
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


def pieces_of(secrets: Iterable[str | None]) -> frozenset[str]:
    """Every piece `redact` looks for, of every secret, in lower case (ASCII_LOWER): worked out once per
    caller, so that a text can be checked for them without working them out again."""
    return frozenset(piece for secret in secrets if secret for piece in _pieces(secret))


def _pieces(secret: str) -> set[str]:
    forms = {secret, quote(secret, safe=""), quote_plus(secret), html.escape(secret), json.dumps(secret)[1:-1]}
    pieces: set[str] = set()
    for form in forms:
        form = form.translate(ASCII_LOWER)
        size = min(SECRET_PIECE, len(form))
        pieces.update(form[i : i + size] for i in range(len(form) - size + 1))
    return pieces
