"""Where the key and base URL come from: the environment first, then `respan login`'s file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from respan_mcp.config import load_config

FILE_KEY = "sk-from-file-1d9a"


def write_credentials(home: Path, credentials: dict, active: str | None = None) -> None:
    folder = home / ".respan"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "credentials.json").write_text(json.dumps(credentials))
    if active is not None:
        (folder / "config.json").write_text(json.dumps({"activeProfile": active}))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    write_credentials(
        tmp_path,
        {
            "default": {"type": "api_key", "apiKey": FILE_KEY, "baseUrl": "https://endpoint.respan.ai/api"},
            "work": {"type": "jwt", "accessToken": "jwt-token-77", "baseUrl": "https://work.example"},
        },
    )
    return tmp_path


def test_key_and_base_url_from_the_file(home: Path) -> None:
    config = load_config({"HOME": str(home)})
    assert config.api_key == FILE_KEY and config.base_url == "https://endpoint.respan.ai"
    assert FILE_KEY not in repr(config)


def test_environment_wins_over_the_file(home: Path) -> None:
    config = load_config({"HOME": str(home), "RESPAN_API_KEY": "env-key", "RESPAN_API_BASE_URL": "https://env.example"})
    assert (config.api_key, config.base_url) == ("env-key", "https://env.example")


def test_active_profile_and_jwt(home: Path) -> None:
    write_credentials(home, json.loads((home / ".respan" / "credentials.json").read_text()), active="work")
    config = load_config({"HOME": str(home)})
    assert (config.api_key, config.base_url) == ("jwt-token-77", "https://work.example")


def test_respan_profile_picks_a_profile(home: Path) -> None:
    write_credentials(home, json.loads((home / ".respan" / "credentials.json").read_text()), active="default")
    assert load_config({"HOME": str(home), "RESPAN_PROFILE": "work"}).api_key == "jwt-token-77"


def test_missing_or_broken_file_means_no_key(tmp_path: Path) -> None:
    assert load_config({"HOME": str(tmp_path)}).api_key is None
    (tmp_path / ".respan").mkdir()
    (tmp_path / ".respan" / "credentials.json").write_text("{not json")
    assert load_config({"HOME": str(tmp_path)}).api_key is None
    assert load_config({"HOME": str(tmp_path), "RESPAN_PROFILE": "nope"}).base_url == "https://api.respan.ai"


def test_unknown_profile_is_no_key(home: Path) -> None:
    assert load_config({"HOME": str(home), "RESPAN_PROFILE": "nope"}).api_key is None


@pytest.mark.parametrize("name", ["RESPAN_TIMEOUT", "RESPAN_MAX_RETRIES"])
def test_bad_numbers_stop_with_a_clear_message(name: str, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=name):
        load_config({"HOME": str(tmp_path), name: "lots"})
