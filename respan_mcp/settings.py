"""Every setting once: its Config field, flag, variables, kind, default, bounds and meaning.

`SETTINGS` is the one table. Config's field defaults, the loader's bounds, the argparse flags,
`--help` (flags and the list of variables) and the configuration table of docs/configuration.md
(`markdown_table()`, kept equal by tests/unit/test_settings.py) are all read from it, so a default or
a bound is written in one row and nowhere else. Help texts say what a setting means; the default
and what is allowed are added from the row.

A leaf module with no third-party imports: `--help` must not pay for the SDK.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from respan_mcp.credentials import CREDENTIALS_FILE, DEFAULT_PROFILE, PROFILE_VARIABLE
from respan_mcp.net import LOOPBACK_TEXT

DEFAULT_BASE_URL = "https://api.respan.ai"
TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")
START = "<!-- settings:start -->"
END = "<!-- settings:end -->"
_URL_RULE = "no user:password@, ?query or #fragment"
_SECURE_URL = f"an https URL, or http to a loopback host ({LOOPBACK_TEXT}); {_URL_RULE}"

# How a kind of setting is read; `Setting.allowed_text` says the same for people.
KINDS = ("secret", "text", "host", "url", "secure-url", "seconds", "whole", "choice", "switch", "scopes")


@dataclass(frozen=True)
class Setting:
    """One row of the table. `field` is Config's (None: read elsewhere); `variables[0]` is the
    variable's name and any others are aliases; a flag, when there is one, wins over them."""

    field: str | None
    kind: str
    default: Any
    help: str
    variables: tuple[str, ...] = ()
    flag: str | None = None
    metavar: str | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # `low` itself is not allowed
    choices: tuple[str, ...] = ()
    allowed: str | None = None  # what is allowed, in words, where the kind and bounds do not say it
    default_text: str | None = None  # the default in words, where it is not a plain value

    @property
    def name(self) -> str:
        """What a message blames when the flag was not given: the variable, else the flag."""
        return self.variables[0] if self.variables else str(self.flag)

    @property
    def bounds(self) -> tuple[float, float]:
        """`(low, high)` of a bounded setting, for the modules that bound a value by the same rule."""
        assert self.low is not None and self.high is not None, f"{self.name} has no upper bound"
        return self.low, self.high

    def allowed_text(self) -> str:
        """What may be given, from the kind and bounds (numbers are written once, in the row)."""
        if self.allowed is not None:
            return self.allowed
        if self.kind in ("seconds", "whole"):
            unit = "seconds" if self.kind == "seconds" else "a whole number"
            low, high = f"{self.low:g}", f"{self.high:g}" if self.high is not None else None
            span = f"more than {low}" if self.low_open else f"{low} or more" if high is None else f"{low} to {high}"
            return f"{unit}, {span}"
        if self.kind == "choice":
            return f"one of {', '.join(self.choices)} (any case)"
        if self.kind == "switch":
            return f"{', '.join(TRUE_WORDS)} or {', '.join(w for w in FALSE_WORDS if w)}"
        raise AssertionError(f"{self.name}: a {self.kind} setting says what is allowed in `allowed`")

    def default_shown(self) -> str:
        if self.default_text is not None:
            return self.default_text
        if self.kind == "switch":
            return "off"
        if isinstance(self.default, float):
            return f"{self.default:g}"
        if isinstance(self.default, tuple):
            return " ".join(self.default)
        return "unset" if self.default is None else str(self.default)

    def help_line(self) -> str:
        """The meaning, what is allowed and the default, as `--help` prints them."""
        return f"{self.help}; {self.allowed_text()} (default {self.default_shown()})"


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "api_key", "secret", None,
        "Respan API key, sent as 'Authorization: Bearer <key>', never logged or shown; surrounding whitespace "
        "is stripped",
        variables=("RESPAN_API_KEY",),
        allowed="visible ASCII, no space inside; a placeholder the host did not expand (${...}, $NAME, %NAME%) "
        "is refused",
        default_text=f"the key `respan login` saved in {CREDENTIALS_FILE}",
    ),
    Setting(
        None, "text", None, f"which profile of {CREDENTIALS_FILE} to use",
        variables=(PROFILE_VARIABLE,), allowed="a profile name",
        default_text=f"the CLI's activeProfile in ~/.respan/config.json, else {DEFAULT_PROFILE}",
    ),
    Setting(
        "base_url", "url", DEFAULT_BASE_URL,
        "API host, with or without /api (both are normalised); set it for an enterprise host such as "
        "https://endpoint.respan.ai",
        variables=("RESPAN_BASE_URL", "RESPAN_API_BASE_URL"),
        allowed=f"{_SECURE_URL}; http beyond loopback only with RESPAN_ALLOW_INSECURE_HTTP",
        default_text=f"the baseUrl `respan login` saved, else {DEFAULT_BASE_URL}",
    ),
    Setting(
        "allow_insecure_http", "switch", False,
        "allow an http:// base URL to a host that is not loopback: the key then crosses the network in clear "
        "text, and a warning says so at start",
        variables=("RESPAN_ALLOW_INSECURE_HTTP",),
    ),
    Setting(
        "timeout", "seconds", 30.0, "seconds to wait for the API on each request, connect to last byte",
        variables=("RESPAN_TIMEOUT",), flag="--timeout", metavar="SECONDS", low=0.0, low_open=True,
    ),
    Setting(
        "max_retries", "whole", 3, "retries of a request after a connection error, a timeout, 429, 500, 502, 503 or 504",
        variables=("RESPAN_MAX_RETRIES",), flag="--max-retries", metavar="N", low=0, high=10,
    ),
    Setting(
        "log_level", "choice", "WARNING", "log level on stderr",
        variables=("RESPAN_LOG_LEVEL",), flag="--log-level", metavar="LEVEL",
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
    ),
    Setting(
        "sandbox", "switch", False,
        "serve every tool against a stand-in of the Respan API inside this process, with sample evaluators and "
        "traced runs in a SQLite file: no key, no network, nothing reaches Respan",
        variables=("RESPAN_SANDBOX",), flag="--sandbox",
    ),
    Setting(
        "sandbox_db", "text", None, "the sandbox's SQLite file (what is written there stays for the next run)",
        variables=("RESPAN_SANDBOX_DB",), allowed="a file path",
        default_text="$XDG_DATA_HOME/respan-mcp/sandbox.sqlite3, else ~/.local/share/respan-mcp/sandbox.sqlite3",
    ),
    Setting(
        "evaluator_ttl", "seconds", 300.0, "seconds an evaluator's description is cached for checking scores",
        variables=("RESPAN_EVALUATOR_TTL",), low=0.0,
    ),
    Setting(
        "max_concurrency", "whole", 16, "most API requests in flight at once; more wait their turn",
        variables=("RESPAN_MAX_CONCURRENCY",), low=1,
    ),
    Setting(
        "batch_deadline", "seconds", 45.0,
        "seconds upsert_log_scores may run before it returns what is left as deferred (a call's "
        "deadline_seconds has the same bounds)",
        variables=("RESPAN_BATCH_DEADLINE",), low=1.0, high=600.0,
    ),
    Setting(
        "allow_server_key", "switch", False,
        "over HTTP, lend the server's key to callers without their own on any bind and behind a proxy (when off, "
        "only on a loopback bind and not through a proxy); only for a network where everyone who can reach the "
        "port may use the key",
        variables=("RESPAN_ALLOW_SERVER_KEY",), flag="--allow-server-key",
    ),
    Setting(
        "log_format", "choice", "text",
        "text, or json: one JSON line per tool call on stderr with the tool, outcome, Respan's HTTP status, "
        "duration and request id (never the key or a score value)",
        variables=("RESPAN_LOG_FORMAT",), flag="--log-format", metavar="text|json", choices=("text", "json"),
    ),
    Setting(
        "transport", "choice", "stdio",
        "stdio for a host that starts the server; streamable-http (served at /mcp, stateless) to serve over "
        "HTTP; sse (served at /sse) is the legacy HTTP+SSE transport, which the MCP revision of 2026-07-28 "
        "deprecates in favour of streamable HTTP; it is still served",
        flag="--transport", metavar="stdio|sse|streamable-http", choices=("stdio", "sse", "streamable-http"),
    ),
    Setting(
        "host", "host", "127.0.0.1",
        "address to bind for the HTTP transports; on a loopback address callers without their own key use the "
        "server's, on any other each caller must send 'Authorization: Bearer <key>'",
        flag="--host", allowed="an address or host name, such as 127.0.0.1 or 0.0.0.0",
    ),
    Setting("port", "whole", 8000, "port to bind for the HTTP transports", flag="--port", low=1, high=65535),
    Setting(
        "header_timeout", "seconds", 10.0,
        "HTTP transports: seconds a client has to send a request's headers, on a new connection and between "
        "requests on a kept-alive one; a slower client is disconnected",
        variables=("RESPAN_HEADER_TIMEOUT",), low=0.1, high=300.0,
    ),
    Setting(
        "oauth_issuer", "secure-url", None,
        "HTTP transports: callers sign in with tokens from this OAuth authorization server (the team's "
        "identity provider); the RESPAN_OAUTH_* settings apply only with it",
        variables=("RESPAN_OAUTH_ISSUER",), flag="--oauth-issuer", metavar="URL", allowed=_SECURE_URL,
        default_text="unset: no sign-in",
    ),
    Setting(
        "public_url", "url", None,
        "the URL clients use to reach this server, behind a proxy the proxy's; tokens are issued for the "
        "resource URL, PUBLIC_URL/mcp (PUBLIC_URL/sse with --transport sse)",
        variables=("RESPAN_PUBLIC_URL",), flag="--public-url", metavar="URL",
        allowed=f"an http(s) URL; {_URL_RULE}", default_text="http://HOST:PORT",
    ),
    Setting(
        "oauth_scopes", "scopes", ("respan:scores",), "scopes a token must carry, separated by spaces or commas",
        variables=("RESPAN_OAUTH_SCOPES",), allowed="names of printable ASCII, no quote or backslash",
    ),
    Setting(
        "oauth_audience", "text", None, "audience a token must be issued for",
        variables=("RESPAN_OAUTH_AUDIENCE",), allowed="text without whitespace",
        default_text="the resource URL (PUBLIC_URL/mcp, or PUBLIC_URL/sse)",
    ),
    Setting(
        "oauth_introspection_url", "secure-url", None,
        "RFC 7662 introspection endpoint, to check opaque tokens; needs RESPAN_OAUTH_CLIENT_ID and "
        "RESPAN_OAUTH_CLIENT_SECRET",
        variables=("RESPAN_OAUTH_INTROSPECTION_URL",), allowed=_SECURE_URL,
    ),
    Setting(
        "oauth_client_id", "text", None, "this server's client id at the introspection endpoint",
        variables=("RESPAN_OAUTH_CLIENT_ID",), allowed="text",
    ),
    Setting(
        "oauth_client_secret", "secret", None,
        "this server's client secret at the introspection endpoint, never logged or shown",
        variables=("RESPAN_OAUTH_CLIENT_SECRET",), allowed="text",
    ),
)
BY_FIELD: dict[str, Setting] = {row.field: row for row in SETTINGS if row.field}


def setting(field: str) -> Setting:
    return BY_FIELD[field]


def default(field: str) -> Any:
    """Config's default for `field`: the table's."""
    return BY_FIELD[field].default


def environment_variables() -> dict[str, str]:
    """Variable -> what it sets, aliases included: the list `--help` prints."""
    said: dict[str, str] = {}
    for row in SETTINGS:
        for index, variable in enumerate(row.variables):
            flag = f"Same as {row.flag}: " if row.flag else ""
            said[variable] = f"Same as {row.name}." if index else flag + row.help_line()
    return said


def markdown_table() -> str:
    """The configuration table of docs/configuration.md: one line per setting."""
    lines = ["| variable | flag | default | allowed | meaning |", "|---|---|---|---|---|"]
    for row in SETTINGS:
        cells = (
            " or ".join(f"`{v}`" for v in row.variables) or "",
            f"`{row.flag}`" if row.flag else "",
            row.default_shown(),
            row.allowed_text(),
            row.help,
        )
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    for action in ACTIONS:
        lines.append("| " + " | ".join(_cell(c) for c in ("", f"`{action.flag}`", "", "", action.help)) + " |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Action:
    """A flag that does something once instead of serving (no Config field, no variable)."""

    flag: str
    help: str


ACTIONS: tuple[Action, ...] = (
    Action(
        "--reset-sandbox",
        "start the sandbox afresh (every score written there gone, the sample data as new) and exit",
    ),
    Action(
        "--check",
        "check the configured key against the configured Respan with one read-only request, print one line and exit "
        "(0: the key works, 1: it does not, 2: a bad setting); nothing is written",
    ),
)


def flag_rows() -> Iterator[Setting]:
    return (row for row in SETTINGS if row.flag)


def _cell(text: str) -> str:
    """Markdown-safe: a `|` would split the cell and `<key>` would be read as an HTML tag."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
