"""The file `respan login` (Respan's CLI) writes: a key and a base URL per profile.

`~/.respan/credentials.json` is an object keyed by profile name; each entry is
`{"type": "api_key", "apiKey", "baseUrl"}` or `{"type": "jwt", "accessToken", "baseUrl"}`. The
profile is RESPAN_PROFILE, else the CLI's `activeProfile` in `~/.respan/config.json`, else
`default`. A missing file is no error; an unreadable one, or a missing profile, is a notice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

CREDENTIALS_FILE = "~/.respan/credentials.json"
PROFILE_VARIABLE = "RESPAN_PROFILE"
DEFAULT_PROFILE = "default"


class Saved(NamedTuple):
    """The chosen `respan login` profile: its key (an API key or a dashboard JWT), base URL, and name."""

    key: str | None
    base_url: str | None
    where: str  # "profile 'default' of ~/.respan/credentials.json"
    notice: str | None


def saved_credentials(env: Mapping[str, str]) -> Saved:
    """The key and base URL of the chosen profile, with where they came from for messages."""
    home = Path(env.get("HOME") or env.get("USERPROFILE") or Path.home())
    credentials, broken = _read_json(home / ".respan" / "credentials.json")
    if not credentials:
        return Saved(None, None, CREDENTIALS_FILE, broken)
    name = profile(env, home)
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


def profile(env: Mapping[str, str], home: Path) -> str:
    """RESPAN_PROFILE, else the CLI's active profile, else `default`."""
    chosen: Any = (env.get(PROFILE_VARIABLE) or "").strip()
    if not chosen:
        chosen = (_read_json(home / ".respan" / "config.json")[0] or {}).get("activeProfile")
    return chosen if isinstance(chosen, str) and chosen else DEFAULT_PROFILE


def _read_json(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError):
        return None, f"{path} could not be read as JSON; ignoring it"
    return (data if isinstance(data, dict) else None), None
