"""Every setting is checked once at start: where each comes from, what is refused, and how a refusal looks.

Unit tests drive `load_config` with an explicit environment and flags; a few start the
installed console script to see a refusal end the process with exit 2, a one-line message and
no traceback, and never show the key.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from respan_mcp import __main__ as cli
from respan_mcp.config import (
    BATCH_DEADLINE_MAX,
    BATCH_DEADLINE_MIN,
    DEFAULT_BASE_URL,
    ENVIRONMENT_VARIABLES,
    Config,
    ConfigError,
    load_config,
)
from tests.conftest import console_script

FILE_KEY = "sk-from-file-1d9a"
# A canary key with a character that cannot go into a header, in the middle of distinctive text.
CANARY = "rk-CANARY-5e8d1f04b7a2c9\u00e9-77c3a0f61d2e9b48"
ISSUER = "https://login.example.com/realms/team"


def write_credentials(home: Path, credentials: dict[str, Any], active: str | None = None) -> None:
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


def load(env: Mapping[str, str] | None = None, **flags: Any) -> Config:
    """load_config with no credentials file, whatever the machine's HOME holds."""
    return load_config({"HOME": "/nonexistent"} | dict(env or {}), flags)


def refused(env: Mapping[str, str] | None = None, **flags: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        load(env, **flags)
    return str(caught.value)


def assert_no_piece(text: str, secret: str) -> None:
    """Neither the secret nor any 8 characters of it in a row."""
    pieces = [secret[i : i + 8] for i in range(len(secret) - 7)]
    assert not [piece for piece in pieces if piece in text], text


# --- the key and base URL: the environment first, then `respan login`'s file ---


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
    broken = load_config({"HOME": str(tmp_path)})
    assert broken.api_key is None and any("could not be read as JSON" in w for w in broken.warnings())
    assert load_config({"HOME": str(tmp_path), "RESPAN_PROFILE": "nope"}).base_url == DEFAULT_BASE_URL


def test_unknown_profile_is_no_key_and_a_warning(home: Path) -> None:
    config = load_config({"HOME": str(home), "RESPAN_PROFILE": "nope"})
    assert config.api_key is None
    assert config.warnings() == ["~/.respan/credentials.json has no profile 'nope'; no key from it"]


def test_a_file_the_environment_makes_unneeded_raises_no_warning(home: Path) -> None:
    env = {"HOME": str(home), "RESPAN_PROFILE": "nope", "RESPAN_API_KEY": "k", "RESPAN_BASE_URL": "https://a.example"}
    assert load_config(env).warnings() == []


def test_flags_win_over_the_environment_and_none_changes_nothing() -> None:
    env = {"RESPAN_TIMEOUT": "30", "RESPAN_MAX_RETRIES": "4", "RESPAN_LOG_LEVEL": "info", "RESPAN_LOG_FORMAT": "json"}
    config = load(env, timeout="0.5", max_retries="1", log_level=None, log_format=None, allow_server_key=None)
    assert (config.timeout, config.max_retries, config.log_level, config.log_format) == (0.5, 1, "INFO", "json")


def test_defaults() -> None:
    config = load()
    assert (config.transport, config.host, config.port) == ("stdio", "127.0.0.1", 8000)
    assert (config.timeout, config.max_retries, config.log_level, config.log_format) == (30.0, 3, "WARNING", "text")
    assert (config.evaluator_ttl, config.max_concurrency, config.batch_deadline) == (300.0, 16, 45.0)
    assert not config.allow_server_key and not config.allow_insecure_http and config.oauth_issuer is None
    assert config.oauth_scopes == ("respan:scores",) and config.warnings() == []


def test_empty_variables_are_unset() -> None:
    """Hosts that fill a variable from an unanswered prompt pass an empty string."""
    names = ["RESPAN_TIMEOUT", "RESPAN_MAX_RETRIES", "RESPAN_LOG_LEVEL", "RESPAN_BASE_URL", "RESPAN_OAUTH_SCOPES"]
    assert load({name: "" for name in names}) == load()


def test_unknown_flag_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="verbose"):
        load(verbose=True)


# --- the API key ---


def test_surrounding_whitespace_is_stripped_from_the_key() -> None:
    assert load({"RESPAN_API_KEY": " sk-abc123\n"}).api_key == "sk-abc123"


@pytest.mark.parametrize("bad", ["sk-ab c123", "sk-ab\tc", "sk-ab\x00c", "sk-ab\x7fc", "sk-abc\u00e9", "sk-\u200babc"])
def test_a_key_that_cannot_go_into_a_header_is_refused_unseen(bad: str) -> None:
    message = refused({"RESPAN_API_KEY": bad})
    assert message.startswith("RESPAN_API_KEY cannot be sent in an HTTP header")
    assert "sk-" not in message and "abc" not in message and "c123" not in message


def test_a_bad_key_in_the_file_names_the_file_not_the_key(tmp_path: Path) -> None:
    write_credentials(tmp_path, {"default": {"type": "api_key", "apiKey": CANARY}})
    message = refused({"HOME": str(tmp_path)})
    assert "profile 'default' of ~/.respan/credentials.json" in message and "RESPAN_API_KEY" not in message
    assert_no_piece(message, CANARY)


@pytest.mark.parametrize(
    "placeholder",
    ["${RESPAN_API_KEY}", "${input:respan-api-key}", "$RESPAN_API_KEY", "%RESPAN_API_KEY%", "your-respan-api-key",
     "your-key", "<your Respan API key>"],
)
def test_a_placeholder_key_is_refused_with_how_to_fix_it(placeholder: str) -> None:
    """A host that did not expand the variable passes its text on: refused at start, not a 401 per call."""
    message = refused({"RESPAN_API_KEY": placeholder})
    assert message.startswith("RESPAN_API_KEY is a placeholder such as ${...}, not a key")
    assert "export RESPAN_API_KEY" in message and placeholder not in message.replace("${RESPAN_API_KEY}", "")


def test_a_placeholder_in_the_credentials_file_names_the_file(tmp_path: Path) -> None:
    write_credentials(tmp_path, {"default": {"type": "api_key", "apiKey": "${RESPAN_API_KEY}"}})
    assert refused({"HOME": str(tmp_path)}).startswith(
        "the key in profile 'default' of ~/.respan/credentials.json is a placeholder"
    )


def test_a_key_that_merely_holds_a_dollar_is_taken() -> None:
    assert load({"RESPAN_API_KEY": "sk-ab$cd12"}).api_key == "sk-ab$cd12"


# --- numbers, choices, booleans ---


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("RESPAN_TIMEOUT", "0.25", 0.25),
        ("RESPAN_EVALUATOR_TTL", "0", 0.0),
        ("RESPAN_BATCH_DEADLINE", str(BATCH_DEADLINE_MIN), BATCH_DEADLINE_MIN),
        ("RESPAN_BATCH_DEADLINE", str(BATCH_DEADLINE_MAX), BATCH_DEADLINE_MAX),
        ("RESPAN_MAX_RETRIES", "0", 0),
        ("RESPAN_MAX_RETRIES", "10", 10),
        ("RESPAN_MAX_CONCURRENCY", "1", 1),
    ],
)
def test_numbers_in_range_are_taken(name: str, raw: str, expected: float) -> None:
    field = name.removeprefix("RESPAN_").lower()
    assert getattr(load({name: raw}), field) == expected


@pytest.mark.parametrize(
    ("name", "raw", "allowed"),
    [
        *[("RESPAN_TIMEOUT", raw, "more than 0") for raw in ("nan", "inf", "-inf", "0", "-1", "lots")],
        *[("RESPAN_EVALUATOR_TTL", raw, "0 or more") for raw in ("nan", "inf", "-1", "soon")],
        *[("RESPAN_BATCH_DEADLINE", raw, "1 to 600") for raw in ("nan", "inf", "0.5", "600.5", "-5")],
        *[("RESPAN_MAX_RETRIES", raw, "0 to 10") for raw in ("-1", "11", "2.5", "lots")],
        *[("RESPAN_MAX_CONCURRENCY", raw, "1 or more") for raw in ("0", "-3", "1.5")],
    ],
)
def test_numbers_out_of_range_are_refused(name: str, raw: str, allowed: str) -> None:
    message = refused({name: raw})
    assert message.startswith(f"{name} {raw!r}") and allowed in message


@pytest.mark.parametrize(("flag", "raw"), [("timeout", "nan"), ("timeout", "0"), ("max_retries", "11")])
def test_a_bad_flag_is_named_as_the_flag(flag: str, raw: str) -> None:
    assert refused({}, **{flag: raw}).startswith(f"--{flag.replace('_', '-')} {raw!r}")


@pytest.mark.parametrize("level", ["debug", "Info", "WARNING", "error", "critical"])
def test_log_levels_in_any_case(level: str) -> None:
    assert load({"RESPAN_LOG_LEVEL": level}).log_level == level.upper()
    assert load(log_level=level).log_level == level.upper()


@pytest.mark.parametrize("level", ["verbose", "warn", "trace", "10"])
def test_other_log_levels_are_refused(level: str) -> None:
    message = refused({"RESPAN_LOG_LEVEL": level})
    assert message.startswith(f"RESPAN_LOG_LEVEL {level!r}") and "DEBUG, INFO, WARNING, ERROR, CRITICAL" in message
    assert refused(log_level=level).startswith(f"--log-level {level!r}")


def test_log_format() -> None:
    assert load({"RESPAN_LOG_FORMAT": "JSON"}).log_format == "json"
    assert "text, json" in refused({"RESPAN_LOG_FORMAT": "yaml"})
    assert refused(log_format="xml").startswith("--log-format 'xml'")


@pytest.mark.parametrize("name", ["RESPAN_ALLOW_SERVER_KEY", "RESPAN_ALLOW_INSECURE_HTTP"])
def test_booleans(name: str) -> None:
    field = name.removeprefix("RESPAN_").lower()
    for word in ("1", "true", "YES", " on "):
        assert getattr(load({name: word}), field) is True
    for word in ("0", "false", "No", "off", ""):
        assert getattr(load({name: word}), field) is False
    for word in ("2", "enabled", "y"):
        message = refused({name: word})
        assert message.startswith(f"{name} {word!r}") and "1, true, yes, on" in message


def test_allow_server_key_flag() -> None:
    assert load(allow_server_key=True).allow_server_key is True


# --- transport, host, port ---


@pytest.mark.parametrize("transport", ["stdio", "sse", "streamable-http"])
def test_transports(transport: str) -> None:
    assert load(transport=transport).transport == transport


def test_an_unknown_transport_is_refused() -> None:
    assert refused(transport="websocket") == "--transport 'websocket' is not one of stdio, sse, streamable-http"


@pytest.mark.parametrize("port", ["1", "65535", 8080])
def test_ports_in_range(port: str | int) -> None:
    assert load(port=port).port == int(port)


@pytest.mark.parametrize("port", ["0", "65536", "70000", "-1", "http"])
def test_ports_out_of_range_are_refused(port: str) -> None:
    message = refused(port=port)
    assert message.startswith(f"--port {port!r}") and "1 to 65535" in message


def test_an_empty_host_is_refused() -> None:
    assert refused(host=" ").startswith("--host ' '")


# --- the base URL ---


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://endpoint.respan.ai/api/", "https://endpoint.respan.ai"),
        ("http://127.0.0.1:8123", "http://127.0.0.1:8123"),
        ("http://127.9.9.9/api", "http://127.9.9.9"),
        ("http://localhost:9", "http://localhost:9"),
        ("http://[::1]:9/api", "http://[::1]:9"),
    ],
)
def test_good_base_urls(raw: str, expected: str) -> None:
    assert load({"RESPAN_BASE_URL": raw}).base_url == expected
    assert load({"RESPAN_API_BASE_URL": raw}).base_url == expected


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("ftp://example.com", "is not an http(s) URL"),
        ("endpoint.respan.ai", "is not an http(s) URL"),
        ("https://", "is not an http(s) URL"),
        ("https://example.com:99999", "is not an http(s) URL"),
        ("https://exa mple.com", "whitespace"),
        ("https://example.com/api?team=1", "?query or #fragment"),
        ("https://example.com/#top", "?query or #fragment"),
        ("https://example.com?", "?query or #fragment"),
    ],
)
def test_bad_base_urls_are_refused(raw: str, why: str) -> None:
    message = refused({"RESPAN_BASE_URL": raw})
    assert message.startswith(f"RESPAN_BASE_URL {raw!r}") and why in message


@pytest.mark.parametrize(
    "raw", ["https://alice:s3cr3t-pw@example.com/api", "https://tok3n-only@example.com", "https://a:p#w@x@example.com"]
)
def test_credentials_in_the_base_url_are_refused_and_not_echoed(raw: str) -> None:
    message = refused({"RESPAN_BASE_URL": raw})
    assert "carries credentials" in message and "***@" in message
    for secret in ("alice", "s3cr3t", "tok3n", "p#w"):
        assert secret not in message


def test_the_file_base_url_is_checked_and_named(tmp_path: Path) -> None:
    write_credentials(tmp_path, {"default": {"type": "api_key", "apiKey": "k", "baseUrl": "ftp://x.example"}})
    message = refused({"HOME": str(tmp_path)})
    assert message.startswith("the baseUrl in profile 'default' of ~/.respan/credentials.json 'ftp://x.example'")


def test_plain_http_beyond_loopback_is_refused() -> None:
    message = refused({"RESPAN_BASE_URL": "http://api.example.com"})
    assert "clear text" in message and "RESPAN_ALLOW_INSECURE_HTTP=1" in message


def test_plain_http_beyond_loopback_allowed_with_a_warning() -> None:
    config = load({"RESPAN_BASE_URL": "http://10.1.2.3:8080/api", "RESPAN_ALLOW_INSECURE_HTTP": "1"})
    assert config.base_url == "http://10.1.2.3:8080"
    (warning,) = config.warnings()
    assert "http://10.1.2.3:8080" in warning and "clear text" in warning


def test_a_value_sharing_part_of_the_key_is_not_echoed() -> None:
    """A key pasted into the wrong variable must not come back in the message."""
    key = "sk-4c1e9a7b2d6f0835"
    for name in ("RESPAN_BASE_URL", "RESPAN_TIMEOUT", "RESPAN_LOG_LEVEL"):
        message = refused({"RESPAN_API_KEY": key, name: key[:12]})
        assert message.startswith(name) and "not shown" in message
        assert_no_piece(message, key)


# --- OAuth ---


def oauth(env: Mapping[str, str] | None = None, **flags: Any) -> Config:
    return load(env, **({"transport": "streamable-http", "oauth_issuer": ISSUER} | flags))


def test_oauth_settings_and_defaults() -> None:
    config = oauth(port="9000")
    assert config.oauth_issuer == ISSUER and config.oauth_scopes == ("respan:scores",)
    assert config.resource_url == "http://127.0.0.1:9000/mcp" and config.audience == config.resource_url
    assert config.oauth_introspection_url is None and config.warnings() == []


def test_issuer_from_the_environment() -> None:
    assert load({"RESPAN_OAUTH_ISSUER": ISSUER}, transport="sse").oauth_issuer == ISSUER


def test_public_url_and_audience() -> None:
    config = oauth({"RESPAN_OAUTH_AUDIENCE": "api://respan-mcp"}, public_url="https://mcp.example.com/team/")
    assert config.resource_url == "https://mcp.example.com/team/mcp" and config.audience == "api://respan-mcp"
    assert load(host="::1", port="8001").resource_url == "http://[::1]:8001/mcp"


@pytest.mark.parametrize(("transport", "endpoint"), [("streamable-http", "/mcp"), ("sse", "/sse"), ("stdio", "/mcp")])
def test_the_resource_is_the_endpoint_clients_connect_to(transport: str, endpoint: str) -> None:
    """A host checks the resource in the metadata against the URL it connected to (RFC 9728 section 3.3),
    and asks its tokens for that URL (RFC 8707): over SSE that is /sse, so /mcp would be refused."""
    config = load(transport=transport, public_url="https://mcp.example.com/team/", port="9000")
    assert config.resource_url == f"https://mcp.example.com/team{endpoint}"
    assert load(transport=transport, port="9000").resource_url == f"http://127.0.0.1:9000{endpoint}"


@pytest.mark.parametrize(("transport", "endpoint"), [("streamable-http", "/mcp"), ("sse", "/sse")])
def test_the_default_audience_follows_the_transport_and_the_variable_overrides_it(
    transport: str, endpoint: str
) -> None:
    config = oauth(transport=transport, public_url="https://mcp.example.com")
    assert config.audience == config.resource_url == f"https://mcp.example.com{endpoint}"
    overridden = oauth({"RESPAN_OAUTH_AUDIENCE": "api://respan-mcp"}, transport=transport)
    assert overridden.audience == "api://respan-mcp" and overridden.resource_url.endswith(endpoint)


@pytest.mark.parametrize(("raw", "expected"), [("a b", ("a", "b")), ("a,b, c", ("a", "b", "c")), ("x x", ("x",))])
def test_scopes_split_on_spaces_or_commas(raw: str, expected: tuple[str, ...]) -> None:
    assert oauth({"RESPAN_OAUTH_SCOPES": raw}).oauth_scopes == expected


@pytest.mark.parametrize("raw", [",", 'say"what', "back\\slash", "caf\u00e9"])
def test_bad_scopes_are_refused(raw: str) -> None:
    assert refused({"RESPAN_OAUTH_SCOPES": raw}, transport="sse", oauth_issuer=ISSUER).startswith("RESPAN_OAUTH_SCOPES")


def test_issuer_is_refused_with_stdio() -> None:
    assert "applies to the HTTP transports" in refused(oauth_issuer=ISSUER)
    assert refused({"RESPAN_OAUTH_ISSUER": ISSUER}).startswith("RESPAN_OAUTH_ISSUER applies to the HTTP transports")


@pytest.mark.parametrize(
    "issuer", ["http://login.example.com", "ftp://login.example.com", "https://u:p@login.example.com"]
)
def test_issuer_must_be_https(issuer: str) -> None:
    message = refused(transport="streamable-http", oauth_issuer=issuer)
    assert message.startswith("--oauth-issuer") and "u:p" not in message


@pytest.mark.parametrize("issuer", ["http://127.0.0.1:9999", "http://localhost:9999/realm", "http://[::1]:9"])
def test_issuer_over_http_to_loopback_is_allowed_for_tests(issuer: str) -> None:
    assert oauth(oauth_issuer=issuer).oauth_issuer == issuer


@pytest.mark.parametrize("url", ["mcp.example.com", "https://mcp.example.com/?x=1", "https://a:b@mcp.example.com"])
def test_bad_public_urls_are_refused(url: str) -> None:
    assert refused(public_url=url).startswith("--public-url")
    assert refused({"RESPAN_PUBLIC_URL": url}).startswith("RESPAN_PUBLIC_URL")


def test_oauth_on_a_wildcard_bind_needs_the_public_url() -> None:
    assert "needs --public-url" in refused(transport="streamable-http", oauth_issuer=ISSUER, host="0.0.0.0")
    assert oauth(host="0.0.0.0", public_url="https://mcp.example.com").resource_url == "https://mcp.example.com/mcp"


def test_oauth_over_plain_http_beyond_loopback_warns() -> None:
    (warning,) = oauth(host="0.0.0.0", public_url="http://mcp.example.com").warnings()
    assert "tokens cross the network in clear text" in warning


def test_introspection_with_its_client() -> None:
    secret = "cs-7b1d0e93f4a2c685"
    env = {
        "RESPAN_OAUTH_INTROSPECTION_URL": "https://login.example.com/introspect",
        "RESPAN_OAUTH_CLIENT_ID": "respan-mcp",
        "RESPAN_OAUTH_CLIENT_SECRET": f" {secret}\n",
    }
    config = oauth(env)
    assert config.oauth_introspection_url == env["RESPAN_OAUTH_INTROSPECTION_URL"]
    assert (config.oauth_client_id, config.oauth_client_secret) == ("respan-mcp", secret)
    assert secret not in repr(config)


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ({"RESPAN_OAUTH_CLIENT_ID": "id"}, "missing: RESPAN_OAUTH_CLIENT_SECRET"),
        ({"RESPAN_OAUTH_CLIENT_SECRET": "cs-7b1d0e93f4a2c685"}, "missing: RESPAN_OAUTH_CLIENT_ID"),
        ({}, "missing: RESPAN_OAUTH_CLIENT_ID and RESPAN_OAUTH_CLIENT_SECRET"),
    ],
)
def test_introspection_names_what_is_missing(given: dict[str, str], missing: str) -> None:
    env = {"RESPAN_OAUTH_INTROSPECTION_URL": "https://login.example.com/introspect"} | given
    message = refused(env, transport="streamable-http", oauth_issuer=ISSUER)
    assert message.startswith("RESPAN_OAUTH_INTROSPECTION_URL needs") and message.endswith(missing)
    assert "cs-7b1d0e93" not in message


def test_introspection_url_over_plain_http_is_refused() -> None:
    env = {"RESPAN_OAUTH_INTROSPECTION_URL": "http://login.example.com/introspect", "RESPAN_OAUTH_CLIENT_ID": "i"}
    # A secret as short as one character would hide any value holding that character (net.py's one rule).
    assert refused(env | {"RESPAN_OAUTH_CLIENT_SECRET": "cs-7b1d0e93"}, transport="sse", oauth_issuer=ISSUER).startswith(
        "RESPAN_OAUTH_INTROSPECTION_URL 'http://login.example.com/introspect' must be an https URL"
    )


@pytest.mark.parametrize(
    "name",
    ["RESPAN_OAUTH_SCOPES", "RESPAN_OAUTH_AUDIENCE", "RESPAN_OAUTH_INTROSPECTION_URL", "RESPAN_OAUTH_CLIENT_ID"],
)
def test_oauth_settings_without_an_issuer_are_refused(name: str) -> None:
    assert refused({name: "https://x.example"}, transport="sse") == (
        f"{name} applies only with --oauth-issuer (or RESPAN_OAUTH_ISSUER), which is not set"
    )


def test_client_credentials_without_introspection_are_refused() -> None:
    env = {"RESPAN_OAUTH_CLIENT_ID": "i", "RESPAN_OAUTH_CLIENT_SECRET": "s"}
    assert "applies only with RESPAN_OAUTH_INTROSPECTION_URL" in refused(env, transport="sse", oauth_issuer=ISSUER)


# --- the command line ---


def test_help_lists_every_variable_and_flag() -> None:
    shown = subprocess.run(
        [console_script(), "--help"], capture_output=True, text=True, timeout=60, env={"COLUMNS": "200"}
    )
    assert shown.returncode == 0
    for name in [*ENVIRONMENT_VARIABLES, "--oauth-issuer", "--public-url", "--transport", "--port", "--log-level"]:
        assert name in shown.stdout, name
    assert "legacy" in shown.stdout


def run_script(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [console_script(), *args],
        env={"PATH": "", "HOME": "/nonexistent"} | env,
        capture_output=True,
        text=True,
        timeout=60,
        input="",  # a closed pipe: the stdio server ends at once
    )


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        ((), {"RESPAN_TIMEOUT": "nan"}, "RESPAN_TIMEOUT 'nan'"),
        (("--port", "70000"), {}, "--port '70000'"),
        (("--log-level", "verbose"), {}, "--log-level 'verbose'"),
        (("--oauth-issuer", ISSUER), {}, "--oauth-issuer applies to the HTTP transports"),
        ((), {"RESPAN_API_KEY": "${RESPAN_API_KEY}"}, "RESPAN_API_KEY is a placeholder such as ${...}, not a key"),
        (
            (),
            {"RESPAN_BASE_URL": "http://user:hunter2@api.example.com"},
            "RESPAN_BASE_URL 'http://***@api.example.com'",
        ),
    ],
)
def test_a_bad_setting_ends_the_process_with_a_message(args: tuple[str, ...], env: dict[str, str], named: str) -> None:
    done = run_script(*args, **env)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"respan-mcp: {named}") and done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr and "hunter2" not in done.stderr


def test_a_canary_key_with_a_bad_character_never_shows() -> None:
    for key in (CANARY, CANARY.replace("\u00e9", " "), CANARY.replace("\u00e9", "\n")):
        done = run_script(RESPAN_API_KEY=key)
        assert done.returncode == 2 and "RESPAN_API_KEY cannot be sent in an HTTP header" in done.stderr
        assert "Traceback" not in done.stderr
        assert_no_piece(done.stdout + done.stderr, key)


def test_a_refused_base_url_never_shows_a_good_key() -> None:
    key = "rk-CANARY-0a9c4e7f12b3d856"
    for base_url in ("not a url", key, f"https://{key}@api.example.com"):
        done = run_script(RESPAN_API_KEY=key, RESPAN_BASE_URL=base_url)
        assert done.returncode == 2 and done.stderr.startswith("respan-mcp: RESPAN_BASE_URL")
        assert_no_piece(done.stderr, key)


def test_main_prints_warnings_then_runs_the_transport(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ran: list[Config] = []
    monkeypatch.setattr(cli, "transport_runner", lambda config: ran.append)
    monkeypatch.setattr(
        "os.environ",
        {"HOME": "/nonexistent", "RESPAN_BASE_URL": "http://10.0.0.7", "RESPAN_ALLOW_INSECURE_HTTP": "yes"},
    )
    cli.main(["--transport", "streamable-http", "--port", "8123"])
    (config,) = ran
    assert (config.transport, config.port, config.base_url) == ("streamable-http", 8123, "http://10.0.0.7")
    err = capsys.readouterr().err
    assert err.startswith("respan-mcp: warning: the base URL 'http://10.0.0.7' is plain http")


def test_main_turns_ctrl_c_into_130(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(config: Config) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "transport_runner", lambda config: interrupted)
    monkeypatch.setattr("os.environ", {"HOME": "/nonexistent"})
    with pytest.raises(SystemExit) as stopped:
        cli.main([])
    assert stopped.value.code == 130


def test_the_transport_module_is_chosen_by_the_transport() -> None:
    """Until serve_*.run(config) exist, the shim hands the transport, host and port to today's serve()."""
    for transport in ("stdio", "sse", "streamable-http"):
        assert callable(cli.transport_runner(load(transport=transport)))


def test_config_and_the_cli_stay_light() -> None:
    """--help and a refused setting must not import the SDK or pydantic."""
    code = "import sys, respan_mcp.__main__; print(sorted({m.split('.')[0] for m in sys.modules} & {'mcp', 'pydantic', 'httpx2', 'anyio'}))"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert shown.stdout.strip() == "[]", shown.stderr


@pytest.mark.slow
def test_allowed_insecure_http_warns_at_start_and_serves(tmp_path: Path) -> None:
    done = run_script(RESPAN_BASE_URL="http://respan.invalid", RESPAN_ALLOW_INSECURE_HTTP="1", HOME=str(tmp_path))
    assert done.returncode == 0, done.stderr  # stdin closed at once: the server ends cleanly
    assert done.stderr.startswith("respan-mcp: warning: the base URL 'http://respan.invalid' is plain http")


def test_docs_configuration_lists_every_variable_and_flag() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    for name in [*ENVIRONMENT_VARIABLES, *(f"`{flag}`" for flag in cli_flags() if flag != "--help")]:
        assert name in page, name


def cli_flags() -> list[str]:
    """Every flag the parser knows, from the same usage line --help prints."""
    return re.findall(r"\[(--[a-z-]+)", cli.build_parser().format_usage())
