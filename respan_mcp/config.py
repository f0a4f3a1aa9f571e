"""Settings from flags, the environment and the `respan login` credentials file, checked once at start.

`load_config` is the one entry: it reads and checks every setting, and a bad one raises
`ConfigError` with a message that names the variable or flag, the value given and what is
allowed, so the process can stop before it serves anything. Messages never show the API
key or a secret (a value sharing any 8 characters with one is not echoed) nor the
credentials inside a URL. Secrets sit in fields left out of `repr`, so a config can be
logged or shown in a traceback without giving them away.

A leaf module, and a light one: `--help` and a refused setting must not pay for the SDK.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

DEFAULT_BASE_URL = "https://api.respan.ai"
TRANSPORTS = ("stdio", "sse", "streamable-http")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
BATCH_DEADLINE_MIN = 1.0  # seconds; models.py bounds a call's deadline_seconds with these too
BATCH_DEADLINE_MAX = 600.0
# Seconds a stopping server gives the calls in flight (and a running batch its report) before it exits.
SHUTDOWN_GRACE = 20.0
MAX_RETRIES_MAX = 10
DEFAULT_OAUTH_SCOPES = ("respan:scores",)
CREDENTIALS_FILE = "~/.respan/credentials.json"
TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")

# name -> what it sets; `--help` prints this table, so it is the one list of variables.
ENVIRONMENT_VARIABLES: dict[str, str] = {
    "RESPAN_API_KEY": "Respan API key, sent as 'Authorization: Bearer <key>' (never logged). Without it, "
    f"the key of {CREDENTIALS_FILE} (written by `respan login`) is used.",
    "RESPAN_PROFILE": f"Which profile of {CREDENTIALS_FILE} to use (default: activeProfile in "
    "~/.respan/config.json, else 'default').",
    "RESPAN_BASE_URL": f"API host, with or without /api (default {DEFAULT_BASE_URL}); for enterprise hosts. "
    "https, or http to a loopback host; no user:password@, ?query or #fragment.",
    "RESPAN_API_BASE_URL": "Same as RESPAN_BASE_URL (the name Respan's own MCP server uses).",
    "RESPAN_ALLOW_INSECURE_HTTP": "1: allow an http:// base URL to a host that is not loopback (the key then "
    "crosses the network in clear text; a warning is printed at start).",
    "RESPAN_TIMEOUT": "Seconds to wait for the API on each request, more than 0 (default 30).",
    "RESPAN_MAX_RETRIES": f"Retries of a request after a connection error, a timeout, 429, 500, 502, 503 or 504, 0 to "
    f"{MAX_RETRIES_MAX} (default 3).",
    "RESPAN_LOG_LEVEL": "Log level on stderr: DEBUG, INFO, WARNING, ERROR or CRITICAL (default WARNING).",
    "RESPAN_EVALUATOR_TTL": "Seconds an evaluator's description is cached for checking scores, 0 or more "
    "(default 300).",
    "RESPAN_MAX_CONCURRENCY": "Most API requests in flight at once, 1 or more; more wait their turn (default 16).",
    "RESPAN_BATCH_DEADLINE": "Seconds upsert_log_scores may run before it returns what is left as deferred, "
    f"{BATCH_DEADLINE_MIN:g} to {BATCH_DEADLINE_MAX:g} (default 45).",
    "RESPAN_ALLOW_SERVER_KEY": "1: over HTTP, callers without their own key use the server's key whatever the bind "
    "(default: only on a loopback bind, and not for requests that came through a proxy).",
    "RESPAN_LOG_FORMAT": "text (default) or json: json logs one line per tool call on stderr (never the key or "
    "a score value).",
    "RESPAN_OAUTH_ISSUER": "Same as --oauth-issuer: the OAuth authorization server (an https URL) whose tokens "
    "callers sign in with; HTTP transports only.",
    "RESPAN_PUBLIC_URL": "Same as --public-url: the URL clients use to reach this server (behind a proxy, the "
    "proxy's); default http://HOST:PORT. With sign-in, the resource URL is PUBLIC_URL/mcp, or PUBLIC_URL/sse for "
    "the legacy SSE transport.",
    "RESPAN_OAUTH_SCOPES": "Scopes a token must carry, space- or comma-separated (default respan:scores).",
    "RESPAN_OAUTH_AUDIENCE": "Audience a token must be issued for (default: the resource URL: PUBLIC_URL/mcp, or "
    "PUBLIC_URL/sse for the legacy SSE transport).",
    "RESPAN_OAUTH_INTROSPECTION_URL": "RFC 7662 introspection endpoint, to check opaque tokens; needs "
    "RESPAN_OAUTH_CLIENT_ID and RESPAN_OAUTH_CLIENT_SECRET.",
    "RESPAN_OAUTH_CLIENT_ID": "This server's client id at the introspection endpoint.",
    "RESPAN_OAUTH_CLIENT_SECRET": "This server's client secret at the introspection endpoint (never logged).",
}

# Config field -> the flag that sets it; a flag wins over its variable.
FLAGS: dict[str, str] = {
    "transport": "--transport",
    "host": "--host",
    "port": "--port",
    "log_level": "--log-level",
    "timeout": "--timeout",
    "max_retries": "--max-retries",
    "allow_server_key": "--allow-server-key",
    "log_format": "--log-format",
    "oauth_issuer": "--oauth-issuer",
    "public_url": "--public-url",
}


class ConfigError(Exception):
    """A setting is wrong: the message names it, the value given (never a secret) and what is allowed."""


@dataclass(frozen=True)
class Config:
    api_key: str | None = field(default=None, repr=False)
    base_url: str = DEFAULT_BASE_URL
    timeout: float = 30.0
    max_retries: int = 3
    log_level: str = "WARNING"
    evaluator_ttl: float = 300.0
    max_concurrency: int = 16
    batch_deadline: float = 45.0
    allow_server_key: bool = False  # lend the server's key to HTTP callers beyond loopback
    log_format: str = "text"
    allow_insecure_http: bool = False  # an http:// base URL beyond loopback: the key in clear text
    transport: str = "stdio"
    host: str = "127.0.0.1"
    port: int = 8000
    oauth_issuer: str | None = None  # set: HTTP callers sign in with this authorization server's tokens
    public_url: str | None = None
    oauth_scopes: tuple[str, ...] = DEFAULT_OAUTH_SCOPES
    oauth_audience: str | None = None
    oauth_introspection_url: str | None = None
    oauth_client_id: str | None = None
    oauth_client_secret: str | None = field(default=None, repr=False)
    notices: tuple[str, ...] = field(default=(), compare=False)  # what loading let pass but should be said

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api"

    @property
    def endpoint(self) -> str:
        """The MCP endpoint's path: /sse on the legacy SSE transport, /mcp on streamable HTTP."""
        return "/sse" if self.transport == "sse" else "/mcp"

    @property
    def resource_url(self) -> str:
        """This server's MCP endpoint as clients name it: what a token's audience must be by default.

        It is the URL a host connects to, /sse on the legacy SSE transport, else /mcp: a host checks
        the protected resource metadata's `resource` against that URL (RFC 9728) and asks for its
        tokens with it (RFC 8707), so any other path makes it refuse to sign in.
        """
        host = f"[{self.host}]" if ":" in self.host else self.host
        return (self.public_url or f"http://{host}:{self.port}").rstrip("/") + self.endpoint

    @property
    def audience(self) -> str:
        return self.oauth_audience or self.resource_url

    def warnings(self) -> list[str]:
        """What is allowed but risky, for `__main__` to print at start."""
        said = list(self.notices)
        if _clear_beyond_loopback(self.base_url):
            said.append(
                f"the base URL {_redact(self.base_url)!r} is plain http to a host that is not loopback: the API "
                "key crosses the network in clear text (allowed by RESPAN_ALLOW_INSECURE_HTTP=1)"
            )
        if self.oauth_issuer and _clear_beyond_loopback(self.resource_url):
            said.append(
                f"the public URL {_redact(self.resource_url)!r} is plain http to a host that is not loopback: "
                "callers' tokens cross the network in clear text; put TLS in front and pass --public-url https://..."
            )
        return said

    def with_overrides(self, **overrides: Any) -> Config:
        """For tests and embedding: replace fields, unchecked; a value left None changes nothing."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def load_config(environ: Mapping[str, str] | None = None, flags: Mapping[str, Any] | None = None) -> Config:
    """Every setting, checked: flags first, then the environment, then `respan login`'s file for key and URL."""
    return _Loader(os.environ if environ is None else environ, flags or {}).config()


class Saved(NamedTuple):
    """The chosen `respan login` profile: its key (an API key or a dashboard JWT), base URL, and name."""

    key: str | None
    base_url: str | None
    where: str  # "the apiKey of profile 'default' in ~/.respan/credentials.json"
    notice: str | None


def saved_credentials(env: Mapping[str, str]) -> Saved:
    """The file is an object keyed by profile name; each entry is
    `{"type": "api_key", "apiKey", "baseUrl"}` or `{"type": "jwt", "accessToken", "baseUrl"}`.
    """
    home = Path(env.get("HOME") or env.get("USERPROFILE") or Path.home())
    credentials, broken = _read_json(home / ".respan" / "credentials.json")
    if not credentials:
        return Saved(None, None, CREDENTIALS_FILE, broken)
    profile = env.get("RESPAN_PROFILE") or (_read_json(home / ".respan" / "config.json")[0] or {}).get("activeProfile")
    name = profile if isinstance(profile, str) and profile else "default"
    entry = credentials.get(name)
    if not isinstance(entry, dict):
        return Saved(None, None, CREDENTIALS_FILE, f"{CREDENTIALS_FILE} has no profile {name!r}; no key from it")
    key_field = "accessToken" if entry.get("type") == "jwt" else "apiKey"
    token, base_url = entry.get(key_field), entry.get("baseUrl")
    return Saved(
        token if isinstance(token, str) and token.strip() else None,
        base_url if isinstance(base_url, str) and base_url.strip() else None,
        f"profile {name!r} of {CREDENTIALS_FILE}",
        None,
    )


def _read_json(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError):
        return None, f"{path} could not be read as JSON; ignoring it"
    return (data if isinstance(data, dict) else None), None


def normalise_base_url(url: str) -> str:
    """Accept both conventions: the SDKs' `.../api` and the MCP server's bare host."""
    url = url.strip().rstrip("/")
    if url.endswith("/api"):
        url = url[: -len("/api")]
    return url or DEFAULT_BASE_URL


class _Loader:
    """Reads each setting from its flag or variable and checks it; knows the secrets so as never to echo one."""

    def __init__(self, env: Mapping[str, str], flags: Mapping[str, Any]) -> None:
        unknown = set(flags) - set(FLAGS)
        if unknown:
            raise TypeError(f"load_config got unknown flags {sorted(unknown)}; known: {sorted(FLAGS)}")
        self.env, self.flags = env, {k: v for k, v in flags.items() if v is not None}
        self.saved = saved_credentials(env)
        self.secrets = [
            s for s in (env.get("RESPAN_API_KEY"), self.saved.key, env.get("RESPAN_OAUTH_CLIENT_SECRET")) if s
        ]

    def config(self) -> Config:
        key, key_where = self.api_key()
        if key is not None and not _header_safe(key):
            raise ConfigError(
                f"{key_where} cannot be sent in an HTTP header: it holds whitespace, a control character or a "
                "non-ASCII character (the key is not shown). Copy it again from the Respan dashboard."
            )
        allow_insecure = self.boolean(*self.pick(None, "RESPAN_ALLOW_INSECURE_HTTP"))
        transport = self.choice(*self.pick("transport", None), TRANSPORTS, "stdio", lower=True)
        host = self.host(*self.pick("host", None))
        issuer_raw, issuer_name = self.pick("oauth_issuer", "RESPAN_OAUTH_ISSUER")
        config = Config(
            api_key=key,
            base_url=self.base_url(allow_insecure),
            timeout=self.number(*self.pick("timeout", "RESPAN_TIMEOUT"), 30.0, low=0.0, low_open=True),
            max_retries=self.integer(*self.pick("max_retries", "RESPAN_MAX_RETRIES"), 3, 0, MAX_RETRIES_MAX),
            log_level=self.choice(*self.pick("log_level", "RESPAN_LOG_LEVEL"), LOG_LEVELS, "WARNING", upper=True),
            evaluator_ttl=self.number(*self.pick(None, "RESPAN_EVALUATOR_TTL"), 300.0, low=0.0),
            max_concurrency=self.integer(*self.pick(None, "RESPAN_MAX_CONCURRENCY"), 16, 1, None),
            batch_deadline=self.number(
                *self.pick(None, "RESPAN_BATCH_DEADLINE"), 45.0, low=BATCH_DEADLINE_MIN, high=BATCH_DEADLINE_MAX
            ),
            allow_server_key=self.boolean(*self.pick("allow_server_key", "RESPAN_ALLOW_SERVER_KEY")),
            log_format=self.choice(*self.pick("log_format", "RESPAN_LOG_FORMAT"), LOG_FORMATS, "text", lower=True),
            allow_insecure_http=allow_insecure,
            transport=transport,
            host=host,
            port=self.integer(*self.pick("port", None), 8000, 1, 65535),
            public_url=self.url(*self.pick("public_url", "RESPAN_PUBLIC_URL"), tls="any"),
            notices=(self.saved.notice,) if self.saved.notice and self.uses_file() else (),
        )
        return replace(config, **self.oauth(config, issuer_raw, issuer_name))

    def pick(self, flag: str | None, variable: str | None) -> tuple[Any, str]:
        """The raw value and the name to blame: the flag's if given, else the variable's (empty = unset)."""
        if flag is not None and flag in self.flags:
            return self.flags[flag], FLAGS[flag]
        raw = self.env.get(variable) if variable else None
        return (raw if raw is not None and raw.strip() else None), variable or FLAGS[flag or ""]

    def show(self, value: Any) -> str:
        """The value for a message: credentials in a URL masked, nothing that shares 8 characters with a secret."""
        text = str(value)
        if any(_shares_a_piece(text, secret) for secret in self.secrets):
            return "(a value not shown: it holds part of a secret)"
        text = _redact(text)
        return repr(text if len(text) <= 120 else text[:117] + "...")

    def uses_file(self) -> bool:
        """The file fills in only what the environment leaves unset: the key, or the base URL."""
        env = self.env
        has_url = any((env.get(v) or "").strip() for v in ("RESPAN_BASE_URL", "RESPAN_API_BASE_URL"))
        return not (env.get("RESPAN_API_KEY") or "").strip() or not has_url

    def api_key(self) -> tuple[str | None, str]:
        key = (self.env.get("RESPAN_API_KEY") or "").strip()
        if key:
            return key, "RESPAN_API_KEY"
        if self.saved.key:
            return self.saved.key.strip(), f"the key in {self.saved.where}"
        return None, "RESPAN_API_KEY"

    def base_url(self, allow_insecure: bool) -> str:
        for variable in ("RESPAN_BASE_URL", "RESPAN_API_BASE_URL"):
            raw, name = self.pick(None, variable)
            if raw is not None:
                break
        else:
            raw, name = self.saved.base_url, f"the baseUrl in {self.saved.where}"
            if raw is None:
                return DEFAULT_BASE_URL
        url = normalise_base_url(self.url(raw, name, tls="any") or "")
        if _clear_beyond_loopback(url) and not allow_insecure:
            raise ConfigError(
                f"{name} {self.show(raw)} is plain http to a host that is not loopback, so the API key would "
                "cross the network in clear text: use https, or set RESPAN_ALLOW_INSECURE_HTTP=1 if that path "
                "is trusted"
            )
        return url

    def url(self, raw: Any, name: str, *, tls: str) -> str | None:
        """An http(s) URL with a host and nothing else: no user:password@, no ?query, no #fragment.

        `tls="loopback-only"` refuses http except to a loopback host (what receives tokens or secrets).
        """
        if raw is None:
            return None
        text = str(raw).strip()
        if "@" in text:
            raise ConfigError(f"{name} {self.show(text)} carries credentials (user:password@): remove them")
        if any(c.isspace() or not c.isprintable() for c in text):
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
        if tls == "loopback-only" and _clear_beyond_loopback(text):
            raise ConfigError(
                f"{name} {self.show(text)} must be an https URL (http is allowed only to a loopback host: "
                "127.0.0.1, ::1, localhost)"
            )
        return text

    def number(
        self, raw: Any, name: str, default: float, *, low: float, high: float | None = None, low_open: bool = False
    ) -> float:
        if raw is None:
            return default
        bounds = f"more than {low:g}" if low_open else f"{low:g} or more" if high is None else f"{low:g} to {high:g}"
        try:
            value = float(raw)
        except (TypeError, ValueError):
            value = math.nan
        if (
            not math.isfinite(value)
            or value < low
            or (low_open and value == low)
            or (high is not None and value > high)
        ):
            raise ConfigError(f"{name} {self.show(raw)} is not allowed: give a finite number of seconds, {bounds}")
        return value

    def integer(self, raw: Any, name: str, default: int, low: int, high: int | None) -> int:
        if raw is None:
            return default
        bounds = f"{low} or more" if high is None else f"{low} to {high}"
        try:
            value = raw if isinstance(raw, int) and not isinstance(raw, bool) else int(str(raw).strip())
        except ValueError:
            raise ConfigError(f"{name} {self.show(raw)} is not a whole number: give one, {bounds}") from None
        if value < low or (high is not None and value > high):
            raise ConfigError(f"{name} {self.show(raw)} is out of range: give a whole number, {bounds}")
        return value

    def choice(
        self, raw: Any, name: str, allowed: tuple[str, ...], default: str, *, upper: bool = False, lower: bool = False
    ) -> str:
        if raw is None:
            return default
        value = str(raw).strip()
        value = value.upper() if upper else value.lower() if lower else value
        if value not in allowed:
            raise ConfigError(f"{name} {self.show(raw)} is not one of {', '.join(allowed)}")
        return value

    def boolean(self, raw: Any, name: str) -> bool:
        if isinstance(raw, bool) or raw is None:
            return bool(raw)
        word = str(raw).strip().lower()
        if word not in TRUE_WORDS + FALSE_WORDS:
            raise ConfigError(f"{name} {self.show(raw)} is not a yes or no: give 1, true, yes, on or 0, false, no, off")
        return word in TRUE_WORDS

    def host(self, raw: Any, name: str) -> str:
        if raw is None:
            return "127.0.0.1"
        host = str(raw).strip()
        if not host or any(c.isspace() or not c.isprintable() for c in host):
            raise ConfigError(f"{name} {self.show(raw)} is not an address to bind, such as 127.0.0.1 or 0.0.0.0")
        return host

    def oauth(self, config: Config, issuer_raw: Any, issuer_name: str) -> dict[str, Any]:
        """The team sign-in settings, which only mean something together and over HTTP."""
        others = {
            "oauth_scopes": "RESPAN_OAUTH_SCOPES",
            "oauth_audience": "RESPAN_OAUTH_AUDIENCE",
            "oauth_introspection_url": "RESPAN_OAUTH_INTROSPECTION_URL",
            "oauth_client_id": "RESPAN_OAUTH_CLIENT_ID",
            "oauth_client_secret": "RESPAN_OAUTH_CLIENT_SECRET",
        }
        given = {key: self.pick(None, variable)[0] for key, variable in others.items()}
        if issuer_raw is None:
            for key, variable in others.items():
                if given[key] is not None:
                    raise ConfigError(
                        f"{variable} applies only with --oauth-issuer (or RESPAN_OAUTH_ISSUER), which is not set"
                    )
            return {}
        issuer = self.url(issuer_raw, issuer_name, tls="loopback-only")
        if config.transport == "stdio":
            raise ConfigError(
                f"{issuer_name} applies to the HTTP transports (--transport streamable-http or sse), not stdio, "
                "where the host that starts the server holds the key"
            )
        if config.public_url is None and config.host in ("0.0.0.0", "::", "[::]"):
            raise ConfigError(
                f"{issuer_name} with --host {config.host} needs --public-url (or RESPAN_PUBLIC_URL): the URL clients "
                "use to reach this server, which tokens are issued for"
            )
        introspection = self.url(
            given["oauth_introspection_url"], others["oauth_introspection_url"], tls="loopback-only"
        )
        client_id = str(given["oauth_client_id"]).strip() if given["oauth_client_id"] is not None else None
        secret = str(given["oauth_client_secret"]).strip() if given["oauth_client_secret"] is not None else None
        needed = [others[k] for k, v in (("oauth_client_id", client_id), ("oauth_client_secret", secret)) if v is None]
        if introspection is not None and needed:
            raise ConfigError(
                f"RESPAN_OAUTH_INTROSPECTION_URL needs RESPAN_OAUTH_CLIENT_ID and RESPAN_OAUTH_CLIENT_SECRET "
                f"(this server's credentials at that endpoint); missing: {' and '.join(needed)}"
            )
        if introspection is None and len(needed) < 2:
            variable = others["oauth_client_id" if client_id is not None else "oauth_client_secret"]
            raise ConfigError(f"{variable} applies only with RESPAN_OAUTH_INTROSPECTION_URL, which is not set")
        audience = given["oauth_audience"]
        if audience is not None and any(c.isspace() or not c.isprintable() for c in audience.strip()):
            raise ConfigError(f"RESPAN_OAUTH_AUDIENCE {self.show(audience)} holds whitespace or a control character")
        return {
            "oauth_issuer": issuer,
            "oauth_scopes": self.scopes(given["oauth_scopes"]),
            "oauth_audience": audience.strip() if audience is not None else None,
            "oauth_introspection_url": introspection,
            "oauth_client_id": client_id,
            "oauth_client_secret": secret,
        }

    def scopes(self, raw: str | None) -> tuple[str, ...]:
        if raw is None:
            return DEFAULT_OAUTH_SCOPES
        scopes = tuple(dict.fromkeys(s for s in re.split(r"[\s,]+", raw) if s))
        bad = [s for s in scopes if not re.fullmatch(r"[\x21\x23-\x5b\x5d-\x7e]+", s)]  # RFC 6749's scope-token
        if not scopes or bad:
            raise ConfigError(
                f"RESPAN_OAUTH_SCOPES {self.show(raw)} is not a list of scopes: give names such as respan:scores, "
                "separated by spaces or commas (printable ASCII, no quote or backslash)"
            )
        return scopes


def _header_safe(value: str) -> bool:
    """Visible ASCII only: what an HTTP header value can carry without being refused or split."""
    return all("\x21" <= c <= "\x7e" for c in value)


def _shares_a_piece(text: str, secret: str) -> bool:
    secret = secret.strip()
    width = min(8, len(secret))
    return width >= 4 and any(secret[i : i + width] in text for i in range(len(secret) - width + 1))


def _redact(text: str) -> str:
    """`scheme://user:pass@host/...` -> `scheme://***@host/...`; everything before the last @ is masked."""
    if "@" not in text:
        return text
    scheme, _, rest = text.partition("://") if "://" in text.split("@")[0] else ("", "", text)
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}" if scheme else f"***@{rest.rsplit('@', 1)[1]}"


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def _clear_beyond_loopback(url: str) -> bool:
    """An http:// URL to a host that is not loopback: what is sent crosses the network in clear text."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() == "http" and not is_loopback(parts.hostname or "")
