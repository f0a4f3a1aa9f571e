"""One setting's raw value read by its kind, and every message about it worded without a secret.

`load_config` (config.py) picks where each setting comes from; `KindReader` turns what it found
into the value: a number of seconds or a whole number within the row's bounds, one of its
choices, a yes or no, a plain http(s) URL (https unless to loopback, for what receives secrets),
a list of scopes, a host or a plain text. A value it refuses raises `ConfigError` naming the
setting, the value as given (never one that holds a piece of a secret) and what is allowed.
"""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import urlsplit

from respan_mcp.net import LOOPBACK_TEXT, crosses_in_clear, shares_a_piece, without_credentials
from respan_mcp.settings import FALSE_WORDS, TRUE_WORDS, Setting


class ConfigError(Exception):
    """A setting is wrong: the message names it, the value given (never a secret) and what is allowed."""


class KindReader:
    """Reads raw values by their row's kind; knows the secrets so as never to echo one."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = secrets

    def by_kind(self, row: Setting, raw: Any, name: str) -> Any:
        """`raw`, given as `name` (the flag or variable to blame), as the row's kind reads it."""
        if row.kind in ("seconds", "whole"):
            return self.number(raw, name, row)
        if row.kind == "choice":
            return self.choice(raw, name, row)
        if row.kind == "switch":
            return self.boolean(raw, name)
        if row.kind in ("url", "secure-url"):
            return self.url(raw, name, secure=row.kind == "secure-url")
        if row.kind == "scopes":
            return self.scopes(raw, name)
        text = str(raw).strip()
        if row.kind == "host" and (not text or not plain(text)):
            raise ConfigError(f"{name} {self.show(raw)} is not {row.allowed_text()}")
        if row.kind == "text" and row.field == "oauth_audience" and not plain(text):
            raise ConfigError(f"{name} {self.show(raw)} holds whitespace or a control character")
        return text

    def show(self, value: Any) -> str:
        """The value for a message: credentials in a URL masked, nothing that holds a piece of a secret."""
        text = str(value)
        if shares_a_piece(text, self.secrets):
            return "(a value not shown: it holds part of a secret)"
        text = without_credentials(text)
        return repr(text if len(text) <= 120 else text[:117] + "...")

    def url(self, raw: Any, name: str, *, secure: bool) -> str:
        """An http(s) URL with a host and nothing else: no user:password@, no ?query, no #fragment.

        `secure` refuses http except to a loopback host (what receives tokens or secrets).
        """
        text = str(raw).strip()
        if "@" in text:
            raise ConfigError(f"{name} {self.show(text)} carries credentials (user:password@): remove them")
        if not plain(text):
            raise ConfigError(f"{name} {self.show(text)} holds whitespace or a control character: give a plain URL")
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - raises on a port that is not 0..65535
        except ValueError:
            parts = None
        if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"{name} {self.show(text)} is not an http(s) URL with a host, such as https://example.com"
            )
        if "?" in text or "#" in text:
            raise ConfigError(f"{name} {self.show(text)} has a ?query or #fragment: give the URL without them")
        if secure and crosses_in_clear(text):
            raise ConfigError(
                f"{name} {self.show(text)} must be an https URL (http is allowed only to a loopback host: "
                f"{LOOPBACK_TEXT})"
            )
        return text

    def number(self, raw: Any, name: str, row: Setting) -> float | int:
        low, high = row.low if row.low is not None else -math.inf, row.high if row.high is not None else math.inf
        if row.kind == "whole":
            try:
                whole = raw if isinstance(raw, int) and not isinstance(raw, bool) else int(str(raw).strip())
            except ValueError:
                raise ConfigError(f"{name} {self.show(raw)} is not a whole number: give {row.allowed_text()}") from None
            if not low <= whole <= high:
                raise ConfigError(f"{name} {self.show(raw)} is out of range: give {row.allowed_text()}")
            return whole
        try:
            value = float(raw)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value) or not low <= value <= high or (row.low_open and value == low):
            raise ConfigError(f"{name} {self.show(raw)} is not allowed: give a finite number of {row.allowed_text()}")
        return value

    def choice(self, raw: Any, name: str, row: Setting) -> str:
        spelt = {choice.lower(): choice for choice in row.choices}
        value = spelt.get(str(raw).strip().lower())
        if value is None:
            raise ConfigError(f"{name} {self.show(raw)} is not one of {', '.join(row.choices)}")
        return value

    def boolean(self, raw: Any, name: str) -> bool:
        if isinstance(raw, bool):
            return raw
        word = str(raw).strip().lower()
        if word not in TRUE_WORDS + FALSE_WORDS:
            raise ConfigError(f"{name} {self.show(raw)} is not a yes or no: give 1, true, yes, on or 0, false, no, off")
        return word in TRUE_WORDS

    def scopes(self, raw: str, name: str) -> tuple[str, ...]:
        scopes = tuple(dict.fromkeys(s for s in re.split(r"[\s,]+", raw) if s))
        bad = [s for s in scopes if not re.fullmatch(r"[\x21\x23-\x5b\x5d-\x7e]+", s)]  # RFC 6749's scope-token
        if not scopes or bad:
            raise ConfigError(
                f"{name} {self.show(raw)} is not a list of scopes: give names such as respan:scores, "
                "separated by spaces or commas (printable ASCII, no quote or backslash)"
            )
        return scopes

def plain(text: str) -> bool:
    """No whitespace and no control character: what a URL, a host or an audience may hold."""
    return not any(c.isspace() or not c.isprintable() for c in text)
