"""The shared rules of net.py: loopback, https-except-loopback, header-safe, secret pieces, placeholders."""

from __future__ import annotations

import pytest

from respan_mcp.config import ConfigError, load_config
from respan_mcp.identity_provider import IdentityProviderError, require_secure
from respan_mcp.net import (
    REDACTED,
    crosses_in_clear,
    header_safe,
    is_loopback,
    is_placeholder,
    is_secure_url,
    redact,
    shares_a_piece,
    without_credentials,
)

LOOPBACK = ["127.0.0.1", "127.0.0.2", "127.255.255.254", "::1", "[::1]", "localhost", "LOCALHOST", "app.localhost",
            "::ffff:127.0.0.1"]
ELSEWHERE = ["10.0.0.1", "192.168.1.5", "0.0.0.0", "::", "example.com", "localhost.example.com", "128.0.0.1", ""]


@pytest.mark.parametrize("host", LOOPBACK)
def test_every_loopback_form_is_loopback(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ELSEWHERE)
def test_other_hosts_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


URLS = {
    "https://idp.example.com": True,
    "http://127.0.0.2:9": True,
    "http://[::1]:8080/realms/x": True,
    "http://localhost": True,
    "http://idp.example.com": False,
    "http://10.0.0.1": False,
    "ftp://127.0.0.1": False,
    "https://": False,
}


@pytest.mark.parametrize(("url", "secure"), URLS.items())
def test_https_except_loopback(url: str, secure: bool) -> None:
    assert is_secure_url(url) is secure
    assert crosses_in_clear(url) is (url.startswith("http://") and not secure)


@pytest.mark.parametrize(("url", "secure"), URLS.items())
def test_sign_in_and_the_start_up_check_agree_on_every_issuer(url: str, secure: bool) -> None:
    """What config lets pass as an issuer, the verifier takes, and the other way round: one rule."""
    env = {"HOME": "/nonexistent", "RESPAN_OAUTH_ISSUER": url}
    try:
        load_config(env, {"transport": "streamable-http"})
        config_takes = True
    except ConfigError:
        config_takes = False
    try:
        require_secure(url, "the issuer")
        auth_takes = True
    except IdentityProviderError:
        auth_takes = False
    assert config_takes is auth_takes is secure


@pytest.mark.parametrize(("value", "safe"), [("sk-abc_123~", True), ("a b", False), ("a\tb", False), ("ключ", False),
                                              ("a\x7f", False), ("", True)])
def test_header_safe_is_visible_ascii(value: str, safe: bool) -> None:
    assert header_safe(value) is safe


def test_credentials_in_a_url_are_masked() -> None:
    assert without_credentials("https://user:pw@host.example/x") == "https://***@host.example/x"
    assert without_credentials("https://host.example") == "https://host.example"


def test_a_piece_of_a_secret_is_redacted_in_any_case_and_encoding() -> None:
    secret = "sk-Secret/Value+0123"
    assert redact("echo sk-secret/value+0123 back", [secret]) == f"echo {REDACTED} back"
    assert redact("url ?token=sk-Secret%2FValue%2B0123", [secret]) == f"url ?token={REDACTED}"
    assert redact("only Value+01 of it", [secret]) == f"only {REDACTED} of it"
    assert shares_a_piece("cret/Val", [secret]) and not shares_a_piece("nothing here", [secret, None])


@pytest.mark.parametrize(
    "text",
    ["${RESPAN_API_KEY}", "${input:respan-api-key}", "${env:RESPAN_API_KEY}", "$RESPAN_API_KEY", "%RESPAN_API_KEY%",
     "your-respan-api-key", "your-key", "<your key>", "<your Respan API key>", "REPLACE-WITH-YOUR-RESPAN-API-KEY",
     "{{RESPAN_API_KEY}}", " ${RESPAN_API_KEY} ", "Bearer ${input:respan-api-key}", "Bearer your-respan-api-key"],
)
def test_placeholders_are_not_keys(text: str) -> None:
    assert is_placeholder(text)


@pytest.mark.parametrize("text", ["sk-abc123", "rk_live_9f8e7d6c5b4a", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "a$b", ""])
def test_keys_are_not_placeholders(text: str) -> None:
    assert not is_placeholder(text)
