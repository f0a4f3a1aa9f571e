"""Settings from flags, the environment and the `respan login` credentials file, checked once at start.

`load_config` is the one entry: it reads every row of the settings table (respan_mcp/settings.py,
where each default and bound is written) from its flag or variable, checks it by its kind
(`setting_kinds.py`) and the rules that tie settings together (here), and a bad one raises
`ConfigError` with a message that names the variable or flag, the value given and what is
allowed, so the process can stop before it serves anything. Messages never show the API key or a
secret (nor any value holding a piece of one, by net.py's rule) nor the credentials inside a URL.
Secrets sit in fields left out of `repr`, so a config can be logged or shown in a traceback
without giving them away.

A leaf module, and a light one: `--help` and a refused setting must not pay for the SDK.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from respan_mcp.credentials import CREDENTIALS_FILE, Saved, saved_credentials
from respan_mcp.net import crosses_in_clear, header_safe, is_loopback, is_placeholder, without_credentials
from respan_mcp.setting_kinds import ConfigError, KindReader
from respan_mcp.settings import BY_FIELD, DEFAULT_BASE_URL, SETTINGS, Setting, default, environment_variables, setting

__all__ = [
    "BATCH_DEADLINE_MAX", "BATCH_DEADLINE_MIN", "CREDENTIALS_FILE", "DEFAULT_BASE_URL", "ENVIRONMENT_VARIABLES",
    "FLAGS", "LOG_FORMATS", "LOG_LEVELS", "MAX_RETRIES_MAX", "SHUTDOWN_GRACE", "TRANSPORTS", "Config", "ConfigError",
    "Saved", "is_loopback", "load_config", "normalise_base_url", "saved_credentials",
]

TRANSPORTS = setting("transport").choices
LOG_LEVELS = setting("log_level").choices
LOG_FORMATS = setting("log_format").choices
BATCH_DEADLINE_MIN, BATCH_DEADLINE_MAX = setting("batch_deadline").bounds  # a call's deadline_seconds too
MAX_RETRIES_MAX = int(setting("max_retries").bounds[1])
# Seconds a stopping server gives the calls in flight (and a running batch its report) before it exits.
SHUTDOWN_GRACE = 20.0
ENVIRONMENT_VARIABLES = environment_variables()  # name -> what it sets; `--help` prints it
FLAGS: dict[str, str] = {row.field: row.flag for row in SETTINGS if row.field and row.flag}  # field -> flag
_OAUTH_EXTRAS = ("oauth_scopes", "oauth_audience", "oauth_introspection_url", "oauth_client_id", "oauth_client_secret")
_PLACEHOLDER_HELP = (
    "a placeholder such as ${...}, not a key: the host passed the text on without putting a key in its place "
    "(an unset variable, or example text left in). Put the key itself in the host's config, or set the "
    "variable the placeholder names where the host starts (for Claude Code's ${RESPAN_API_KEY}, export "
    "RESPAN_API_KEY in the shell that starts claude)"
)


@dataclass(frozen=True)
class Config:
    """Every setting, checked; each field's default is its row's in the settings table."""

    api_key: str | None = field(default=default("api_key"), repr=False)
    base_url: str = default("base_url")
    timeout: float = default("timeout")
    max_retries: int = default("max_retries")
    log_level: str = default("log_level")
    sandbox: bool = default("sandbox")  # every call answered by the stand-in inside the process
    sandbox_db: str | None = default("sandbox_db")  # resolved at load: the file the sandbox keeps its data in
    evaluator_ttl: float = default("evaluator_ttl")
    max_concurrency: int = default("max_concurrency")
    batch_deadline: float = default("batch_deadline")
    allow_server_key: bool = default("allow_server_key")  # lend the server's key to HTTP callers beyond loopback
    log_format: str = default("log_format")
    allow_insecure_http: bool = default("allow_insecure_http")  # an http:// base URL beyond loopback
    transport: str = default("transport")
    host: str = default("host")
    port: int = default("port")
    oauth_issuer: str | None = default("oauth_issuer")  # set: HTTP callers sign in with its tokens
    public_url: str | None = default("public_url")
    oauth_scopes: tuple[str, ...] = default("oauth_scopes")
    oauth_audience: str | None = default("oauth_audience")
    oauth_introspection_url: str | None = default("oauth_introspection_url")
    oauth_client_id: str | None = default("oauth_client_id")
    oauth_client_secret: str | None = field(default=default("oauth_client_secret"), repr=False)
    notices: tuple[str, ...] = field(default=(), compare=False)  # what loading let pass but should be said

    def sandboxed(self, env: Mapping[str, str]) -> Config:
        """This config as the sandbox serves it: a key and a base URL of its own, so no real key is ever used
        and nothing can be sent beyond the process (its client's transport answers in-process)."""
        path = self.sandbox_db or sandbox_path(env)
        return replace(self, api_key=SANDBOX_KEY, base_url=SANDBOX_BASE_URL, sandbox_db=path, notices=())

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
        if crosses_in_clear(self.base_url) and not self.sandbox:  # the sandbox's URL is never resolved
            said.append(
                f"the base URL {without_credentials(self.base_url)!r} is plain http to a host that is not loopback: the API "
                "key crosses the network in clear text (allowed by RESPAN_ALLOW_INSECURE_HTTP=1)"
            )
        if self.oauth_issuer and crosses_in_clear(self.resource_url):
            said.append(
                f"the public URL {without_credentials(self.resource_url)!r} is plain http to a host that is not loopback: "
                "callers' tokens cross the network in clear text; put TLS in front and pass --public-url https://..."
            )
        return said

    def with_overrides(self, **overrides: Any) -> Config:
        """For tests and embedding: replace fields, unchecked; a value left None changes nothing."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def load_config(environ: Mapping[str, str] | None = None, flags: Mapping[str, Any] | None = None) -> Config:
    """Every setting, checked: flags first, then the environment, then `respan login`'s file for key and URL."""
    return _Loader(os.environ if environ is None else environ, flags or {}).config()


SANDBOX_KEY = "sandbox"  # the sandbox accepts any key; this one is no real key, so none is ever handed to it
SANDBOX_BASE_URL = "http://sandbox.respan.invalid"  # never resolved: the sandbox's transport answers in-process


def sandbox_path(env: Mapping[str, str]) -> str:
    """Where the sandbox keeps its data by default: under the user's data directory (XDG)."""
    data_home = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local" / "share")
    return str(Path(data_home) / "respan-mcp" / "sandbox.sqlite3")


def normalise_base_url(url: str) -> str:
    """Accept both conventions: the SDKs' `.../api` and the MCP server's bare host."""
    url = url.strip().rstrip("/")
    if url.endswith("/api"):
        url = url[: -len("/api")]
    return url or DEFAULT_BASE_URL


class _Loader(KindReader):
    """Reads each row of the table from its flag or variables and checks it by the row's kind and
    bounds (`KindReader`); knows the secrets so as never to echo one."""

    def __init__(self, env: Mapping[str, str], flags: Mapping[str, Any]) -> None:
        unknown = set(flags) - set(FLAGS)
        if unknown:
            raise TypeError(f"load_config got unknown flags {sorted(unknown)}; known: {sorted(FLAGS)}")
        self.env, self.flags = env, {k: v for k, v in flags.items() if v is not None}
        self.saved = saved_credentials(env)
        given = [self.env.get(row.name) for row in SETTINGS if row.kind == "secret"] + [self.saved.key]
        super().__init__([secret.strip() for secret in given if secret and secret.strip()])

    def config(self) -> Config:
        special = {"api_key", "base_url", "oauth_issuer", *_OAUTH_EXTRAS}
        values = {row.field: self.read(row) for row in SETTINGS if row.field and row.field not in special}
        config = Config(
            api_key=self.api_key(),
            base_url=self.base_url(bool(values["allow_insecure_http"])),
            notices=(self.saved.notice,) if self.saved.notice and self.uses_file() else (),
            **values,
        )
        config = replace(config, **self.oauth(config))
        return config.sandboxed(self.env) if config.sandbox else config

    def pick(self, row: Setting) -> tuple[Any, str]:
        """The raw value and the name to blame: the flag's if given, else the first variable set (empty = unset)."""
        if row.field in self.flags:
            return self.flags[row.field], str(row.flag)
        for variable in row.variables:
            raw = self.env.get(variable)
            if raw is not None and raw.strip():
                return raw, variable
        return None, row.name

    def read(self, row: Setting) -> Any:
        """The row's value by its kind, or its default when it is not given."""
        raw, name = self.pick(row)
        return row.default if raw is None else self.by_kind(row, raw, name)

    def uses_file(self) -> bool:
        """The file fills in only what the environment leaves unset: the key, or the base URL."""
        return self.pick(setting("api_key"))[0] is None or self.pick(setting("base_url"))[0] is None

    def api_key(self) -> str | None:
        raw, where = self.pick(setting("api_key"))
        if raw is None and self.saved.key:
            raw, where = self.saved.key, f"the key in {self.saved.where}"
        if raw is None:
            return None
        key = str(raw).strip()
        if is_placeholder(key):
            raise ConfigError(f"{where} is {_PLACEHOLDER_HELP}")
        if not header_safe(key):
            raise ConfigError(
                f"{where} cannot be sent in an HTTP header: it holds whitespace, a control character or a "
                "non-ASCII character (the key is not shown). Copy it again from the Respan dashboard."
            )
        return key

    def base_url(self, allow_insecure: bool) -> str:
        row = setting("base_url")
        raw, name = self.pick(row)
        if raw is None:
            raw, name = self.saved.base_url, f"the baseUrl in {self.saved.where}"
            if raw is None:
                return str(row.default)
        url = normalise_base_url(self.url(raw, name, secure=False))
        if crosses_in_clear(url) and not allow_insecure:
            raise ConfigError(
                f"{name} {self.show(raw)} is plain http to a host that is not loopback, so the API key would "
                f"cross the network in clear text: use https, or set {setting('allow_insecure_http').name}=1 if "
                "that path is trusted"
            )
        return url

    def oauth(self, config: Config) -> dict[str, Any]:
        """The team sign-in settings, which only mean something together and over HTTP."""
        issuer_row, extras = setting("oauth_issuer"), [setting(name) for name in _OAUTH_EXTRAS]
        issuer_raw, issuer_name = self.pick(issuer_row)
        if issuer_raw is None:
            for row in extras:
                if self.pick(row)[0] is not None:
                    raise ConfigError(
                        f"{row.name} applies only with {issuer_row.flag} (or {issuer_row.name}), which is not set"
                    )
            return {}
        issuer = self.url(issuer_raw, issuer_name, secure=True)
        if config.transport == "stdio":
            raise ConfigError(
                f"{issuer_name} applies to the HTTP transports (--transport streamable-http or sse), not stdio, "
                "where the host that starts the server holds the key"
            )
        public = setting("public_url")
        if config.public_url is None and config.host in ("0.0.0.0", "::", "[::]"):
            raise ConfigError(
                f"{issuer_name} with --host {config.host} needs {public.flag} (or {public.name}): the URL clients "
                "use to reach this server, which tokens are issued for"
            )
        values = {str(row.field): self.read(row) for row in extras}
        introspection, client, secret = (BY_FIELD[f] for f in _OAUTH_EXTRAS[2:])
        needed = [row.name for row in (client, secret) if values[str(row.field)] is None]
        if values["oauth_introspection_url"] is not None and needed:
            raise ConfigError(
                f"{introspection.name} needs {client.name} and {secret.name} (this server's credentials at that "
                f"endpoint); missing: {' and '.join(needed)}"
            )
        if values["oauth_introspection_url"] is None and len(needed) < 2:
            given = client if values["oauth_client_id"] is not None else secret
            raise ConfigError(f"{given.name} applies only with {introspection.name}, which is not set")
        return {"oauth_issuer": issuer, **values}


assert {f.name for f in fields(Config)} - {"notices"} == set(BY_FIELD), "every Config field has a row in SETTINGS"
