"""Command line: flags and environment -> Config -> the transport's run(config). No logic of its own.

The flags and the list of variables in `--help` come from the settings table (settings.py).
Every flag is taken as text and checked by `load_config`, with the variables, so a bad value
gets the same kind of message wherever it came from, and the process stops with exit 2
before anything heavy is imported.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import textwrap
from collections.abc import Callable

from respan_mcp.config import ENVIRONMENT_VARIABLES, Config, ConfigError, load_config
from respan_mcp.settings import ACTIONS, flag_rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def build_parser() -> argparse.ArgumentParser:
    width = max(map(len, ENVIRONMENT_VARIABLES)) + 2
    environment = "\n".join(
        textwrap.fill(meaning, 100, initial_indent=f"  {name:<{width}}", subsequent_indent=" " * (width + 2))
        for name, meaning in ENVIRONMENT_VARIABLES.items()
    )
    parser = argparse.ArgumentParser(
        prog="respan-mcp",
        description="MCP server that lets AI agents write evaluation scores into Respan.",
        epilog=f"environment variables:\n{environment}\n\nA flag wins over its variable, a variable over the "
        "`respan login` file, and that over the default. Every setting is checked at start: a bad one stops "
        "the server with a message and exit status 2.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for action in ACTIONS:
        parser.add_argument(action.flag, action="store_true", help=action.help.replace("%", "%%"))
    for row in flag_rows():
        also = f" (or {row.name})" if row.variables else ""
        # `%` would be read as a format by argparse.
        text = (row.help_line() + also).replace("%", "%%")
        if row.kind == "switch":
            parser.add_argument(str(row.flag), action="store_true", default=None, help=text)
        else:
            parser.add_argument(str(row.flag), metavar=row.metavar, help=text)
    return parser


def main(argv: list[str] | None = None) -> None:
    flags = vars(parse_args(argv))
    checking, resetting = flags.pop("check"), flags.pop("reset_sandbox")
    try:
        config = load_config(flags=flags)
    except ConfigError as error:
        print(f"respan-mcp: {error}", file=sys.stderr)
        sys.exit(2)
    for warning in config.warnings():
        print(f"respan-mcp: warning: {warning}", file=sys.stderr)
    if resetting or config.sandbox:
        sandbox(config, resetting)
    if checking:
        from respan_mcp.check import check  # the SDK's client only now, as for a transport

        status, line = check(config)
        print(f"respan-mcp: {line}")
        sys.exit(status)
    try:
        transport_runner(config)(config)
    except KeyboardInterrupt:
        sys.exit(130)


def sandbox(config: Config, resetting: bool) -> None:
    """Say that this is the sandbox and where its data is; with --reset-sandbox, start it afresh and exit."""
    from respan_mcp.config import sandbox_path
    from respan_mcp.standin.sandbox import reset

    path = config.sandbox_db or sandbox_path(os.environ)
    if resetting:
        reset(path)
        print(f"respan-mcp: the sandbox at {path} starts afresh: no scores, the sample data as new")
        sys.exit(0)
    print(
        "respan-mcp: sandbox: every call is answered by a stand-in of the Respan API inside this process; nothing "
        f"reaches Respan. Its data: {path} (start afresh with --reset-sandbox).",
        file=sys.stderr,
    )


def transport_runner(config: Config) -> Callable[[Config], None]:
    """The transport's `run(config)`, imported only now: --help and a refused setting never load the SDK."""
    module = importlib.import_module(
        "respan_mcp.serve_stdio" if config.transport == "stdio" else "respan_mcp.serve_http"
    )
    run: Callable[[Config], None] = module.run
    return run


if __name__ == "__main__":
    main()
