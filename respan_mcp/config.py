"""Settings from the environment and flags.

The API key is held in a field left out of `repr`, so a config object can be
logged or shown in a traceback without giving the key away.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

DEFAULT_BASE_URL = "https://api.respan.ai"

# name -> what it sets; `--help` prints this table, so it is the one list of variables.
ENVIRONMENT_VARIABLES: dict[str, str] = {
    "RESPAN_API_KEY": "Respan API key, sent as 'Authorization: Bearer <key>' (never logged).",
    "RESPAN_BASE_URL": f"API host, with or without /api (default {DEFAULT_BASE_URL}); for enterprise hosts.",
    "RESPAN_API_BASE_URL": "Same as RESPAN_BASE_URL (the name Respan's own MCP server uses).",
    "RESPAN_TIMEOUT": "Seconds to wait for the API on each request (default 30).",
    "RESPAN_MAX_RETRIES": "Retries of a write after a connection error, 429, 502, 503 or 504 (default 3).",
    "RESPAN_LOG_LEVEL": "Log level on stderr: DEBUG, INFO, WARNING, ERROR (default WARNING).",
    "RESPAN_EVALUATOR_TTL": "Seconds an evaluator's description is cached for checking scores (default 300).",
    "RESPAN_MAX_CONCURRENCY": "Most API requests in flight at once; more wait their turn (default 16).",
    "RESPAN_BATCH_DEADLINE": "Seconds upsert_log_scores may run before it returns what is left as deferred (default 45).",
}


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

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api"

    def with_overrides(self, **overrides: Any) -> Config:
        """Flags win over the environment; a flag left unset (None) changes nothing."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def load_config(environ: Mapping[str, str] | None = None) -> Config:
    env = os.environ if environ is None else environ
    base_url = env.get("RESPAN_BASE_URL") or env.get("RESPAN_API_BASE_URL") or DEFAULT_BASE_URL
    return Config(
        api_key=env.get("RESPAN_API_KEY") or None,
        base_url=normalise_base_url(base_url),
        timeout=_number(env, "RESPAN_TIMEOUT", 30.0, float),
        max_retries=_number(env, "RESPAN_MAX_RETRIES", 3, int),
        log_level=(env.get("RESPAN_LOG_LEVEL") or "WARNING").upper(),
        evaluator_ttl=_number(env, "RESPAN_EVALUATOR_TTL", 300.0, float),
        max_concurrency=max(1, _number(env, "RESPAN_MAX_CONCURRENCY", 16, int)),
        batch_deadline=_number(env, "RESPAN_BATCH_DEADLINE", 45.0, float),
    )


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
