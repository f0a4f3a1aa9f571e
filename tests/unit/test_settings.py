"""The settings table is the one source: Config's defaults, the flags, --help and docs/configuration.md.

docs/configuration.md holds `markdown_table()` between its markers; a change to a row shows up
here as a failing diff. `UPDATE_SNAPSHOT=1` rewrites the file and still fails, so a rewrite is
always a reviewed change, never a silent pass.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest

from respan_mcp import __main__ as cli
from respan_mcp.config import ENVIRONMENT_VARIABLES, FLAGS, Config, load_config
from respan_mcp.settings import ACTIONS, END, SETTINGS, START, markdown_table

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
# The interface hosts and deployments rely on: every flag and variable there is, by name.
STABLE_FLAGS = {"--sandbox", "--transport", "--host", "--port", "--log-level", "--timeout", "--max-retries", "--allow-server-key",
                "--log-format", "--oauth-issuer", "--public-url"}
STABLE_VARIABLES = {
    "RESPAN_API_KEY", "RESPAN_PROFILE", "RESPAN_BASE_URL", "RESPAN_API_BASE_URL", "RESPAN_ALLOW_INSECURE_HTTP",
    "RESPAN_TIMEOUT", "RESPAN_MAX_RETRIES", "RESPAN_LOG_LEVEL", "RESPAN_EVALUATOR_TTL", "RESPAN_MAX_CONCURRENCY",
    "RESPAN_BATCH_DEADLINE", "RESPAN_ALLOW_SERVER_KEY", "RESPAN_LOG_FORMAT", "RESPAN_OAUTH_ISSUER",
    "RESPAN_PUBLIC_URL", "RESPAN_OAUTH_SCOPES", "RESPAN_OAUTH_AUDIENCE", "RESPAN_OAUTH_INTROSPECTION_URL",
    "RESPAN_OAUTH_CLIENT_ID", "RESPAN_OAUTH_CLIENT_SECRET", "RESPAN_SANDBOX", "RESPAN_SANDBOX_DB", "RESPAN_HEADER_TIMEOUT",
}


def test_docs_configuration_table_is_the_settings_table() -> None:
    text = DOC.read_text()
    before, rest = text.split(START + "\n", 1)
    _, after = rest.split(END, 1)
    expected = f"{before}{START}\n{markdown_table()}\n{END}{after}"
    if text == expected:
        return
    if os.environ.get("UPDATE_SNAPSHOT") == "1":
        DOC.write_text(expected)
        pytest.fail(f"{DOC.name} rewritten from the settings table: review the diff and run again")
    pytest.fail(f"{DOC.name} differs from the settings table; run with UPDATE_SNAPSHOT=1 to rewrite it")


def test_every_flag_and_variable_stays() -> None:
    assert {row.flag for row in SETTINGS if row.flag} == STABLE_FLAGS
    assert set(ENVIRONMENT_VARIABLES) == STABLE_VARIABLES


def test_configs_defaults_are_the_tables() -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(Config) if f.name != "notices"}
    assert defaults == {row.field: row.default for row in SETTINGS if row.field}
    loaded = load_config({"HOME": "/nonexistent"})
    assert all(getattr(loaded, row.field) == row.default for row in SETTINGS if row.field)


def test_the_parser_has_exactly_the_tables_flags() -> None:
    parser = cli.build_parser()
    usage = parser.format_usage()
    actions = {action.flag for action in ACTIONS}
    assert set(re.findall(r"\[(--[a-z-]+)", usage)) - {"--help"} - actions == set(FLAGS.values()) == STABLE_FLAGS
    assert set(vars(parser.parse_args([]))) == set(FLAGS) | {flag.removeprefix("--").replace("-", "_") for flag in actions}


def test_no_default_or_bound_is_written_twice_in_help() -> None:
    """--help says each row's default once, from the row; nothing in it contradicts the table."""
    help_text = cli.build_parser().format_help()
    for row in SETTINGS:
        if row.flag:
            assert f"(default {row.default_shown()})" in " ".join(help_text.split())
    stated = re.findall(r"\(default ([^)]*)\)", " ".join(help_text.split()))
    # once per flag, once per variable (an alias says "Same as ..." instead)
    assert len(stated) == sum(1 for row in SETTINGS if row.flag) + sum(1 for row in SETTINGS if row.variables)
