"""Settings from the environment, the `respan login` credentials file, and flags.

The API key is held in a field left out of `repr`, so a config object can be
logged or shown in a traceback without giving the key away.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.respan.ai"

# name -> what it sets; `--help` prints this table, so it is the one list of variables.
ENVIRONMENT_VARIABLES: dict[str, str] = {
    "RESPAN_API_KEY": "Respan API key, sent as 'Authorization: Bearer <key>' (never logged). Without it, "
    "the key of ~/.respan/credentials.json (written by `respan login`) is used.",
    "RESPAN_PROFILE": "Which profile of ~/.respan/credentials.json to use (default: activeProfile in "
    "~/.respan/config.json, else 'default').",
    "RESPAN_BASE_URL": f"API host, with or without /api (default {DEFAULT_BASE_URL}); for enterprise hosts.",
    "RESPAN_API_BASE_URL": "Same as RESPAN_BASE_URL (the name Respan's own MCP server uses).",
    "RESPAN_TIMEOUT": "Seconds to wait for the API on each request (default 30).",
    "RESPAN_MAX_RETRIES": "Retries of a write after a connection error, 429, 502, 503 or 504 (default 3).",
    "RESPAN_LOG_LEVEL": "Log level on stderr: DEBUG, INFO, WARNING, ERROR (default WARNING).",
    "RESPAN_EVALUATOR_TTL": "Seconds an evaluator's description is cached for checking scores (default 300).",
    "RESPAN_MAX_CONCURRENCY": "Most API requests in flight at once; more wait their turn (default 16).",
    "RESPAN_BATCH_DEADLINE": "Seconds upsert_log_scores may run before it returns what is left as deferred (default 45).",
    "RESPAN_ALLOW_SERVER_KEY": "1: over HTTP, callers without their own key use the server's key whatever the bind "
    "(default: only on a loopback bind, and not for requests that came through a proxy).",
    "RESPAN_LOG_FORMAT": "text (default) or json: json logs one line per tool call on stderr (never the key or "
    "a score value).",
}

LOG_FORMATS = ("text", "json")
BATCH_DEADLINE_MIN = 1.0
BATCH_DEADLINE_MAX = 600.0


def normalise_base_url(url: str) -> str:
    """Accept both conventions: the SDKs' `.../api` and the MCP server's bare host."""
    url = url.strip().rstrip("/")
    if url.endswith("/api"):
        url = url[: -len("/api")]
    return url or DEFAULT_BASE_URL


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

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api"

    def with_overrides(self, **overrides: Any) -> Config:
        """Flags win over the environment; a flag left unset (None) changes nothing."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def load_config(environ: Mapping[str, str] | None = None) -> Config:
    """Each setting from the environment first; the key and base URL then from `respan login`'s file."""
    env = os.environ if environ is None else environ
    api_key = env.get("RESPAN_API_KEY") or None
    base_url = env.get("RESPAN_BASE_URL") or env.get("RESPAN_API_BASE_URL") or None
    if api_key is None or base_url is None:
        saved_key, saved_url = saved_credentials(env)
        api_key, base_url = api_key or saved_key, base_url or saved_url
    return Config(
        api_key=api_key,
        base_url=normalise_base_url(base_url or DEFAULT_BASE_URL),
        timeout=_number(env, "RESPAN_TIMEOUT", 30.0, float),
        max_retries=_number(env, "RESPAN_MAX_RETRIES", 3, int),
        log_level=(env.get("RESPAN_LOG_LEVEL") or "WARNING").upper(),
        evaluator_ttl=_number(env, "RESPAN_EVALUATOR_TTL", 300.0, float),
        max_concurrency=max(1, _number(env, "RESPAN_MAX_CONCURRENCY", 16, int)),
        batch_deadline=_number(env, "RESPAN_BATCH_DEADLINE", 45.0, float),
        allow_server_key=(env.get("RESPAN_ALLOW_SERVER_KEY") or "").strip().lower() in ("1", "true", "yes", "on"),
        log_format=_log_format(env.get("RESPAN_LOG_FORMAT") or "text"),
    )


def _log_format(raw: str) -> str:
    if raw.strip().lower() not in LOG_FORMATS:
        raise SystemExit(f"respan-mcp: RESPAN_LOG_FORMAT must be text or json, got {raw!r}")
    return raw.strip().lower()


def saved_credentials(env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The key (an API key, or a dashboard JWT) and base URL of the chosen `respan login` profile.

    The file is an object keyed by profile name; each entry is
    `{"type": "api_key", "apiKey", "baseUrl"}` or `{"type": "jwt", "accessToken", "baseUrl"}`.
    """
    home = Path(env.get("HOME") or env.get("USERPROFILE") or Path.home())
    credentials = _read_json(home / ".respan" / "credentials.json")
    if not credentials:
        return None, None
    profile = env.get("RESPAN_PROFILE") or (_read_json(home / ".respan" / "config.json") or {}).get("activeProfile")
    entry = credentials.get(profile or "default")
    if not isinstance(entry, dict):
        logger.warning("~/.respan/credentials.json has no profile %r", profile or "default")
        return None, None
    token = entry.get("accessToken") if entry.get("type") == "jwt" else entry.get("apiKey")
    base_url = entry.get("baseUrl")
    return (token if isinstance(token, str) and token else None, base_url if isinstance(base_url, str) else None)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        logger.warning("%s could not be read as JSON; ignoring it", path)
        return None
    return data if isinstance(data, dict) else None


def _number(env: Mapping[str, str], name: str, default: Any, kind: type) -> Any:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SystemExit(f"respan-mcp: {name} must be a number, got {raw!r}") from None
    if value < 0:
        raise SystemExit(f"respan-mcp: {name} must not be negative, got {raw!r}")
    return value
