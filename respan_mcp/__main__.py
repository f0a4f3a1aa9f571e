"""Command line: flags and environment -> Config -> the transport's run(config). No logic of its own.

Every flag is taken as text and checked by `load_config`, with the variables, so a bad value
gets the same kind of message wherever it came from, and the process stops with exit 2
before anything heavy is imported.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

from respan_mcp.config import (
    ENVIRONMENT_VARIABLES,
    LOG_FORMATS,
    LOG_LEVELS,
    MAX_RETRIES_MAX,
    TRANSPORTS,
    Config,
    ConfigError,
    load_config,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def build_parser() -> argparse.ArgumentParser:
    width = max(map(len, ENVIRONMENT_VARIABLES)) + 2
    environment = "\n".join(f"  {name:<{width}}{meaning}" for name, meaning in ENVIRONMENT_VARIABLES.items())
    parser = argparse.ArgumentParser(
        prog="respan-mcp",
        description="MCP server that lets AI agents write evaluation scores into Respan.",
        epilog=f"environment variables:\n{environment}\n\nFlags win over environment variables. Every setting "
        "is checked at start: a bad one stops the server with a message and exit status 2.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--transport",
        metavar="|".join(TRANSPORTS),
        help="stdio (default) for a host that starts the server; streamable-http (served at /mcp, stateless) to "
        "serve over HTTP; sse (served at /sse) is the legacy HTTP+SSE transport, which the MCP revision of "
        "2026-07-28 deprecates in favour of streamable HTTP; it is still served",
    )
    parser.add_argument(
        "--host",
        help="address to bind for HTTP transports (default 127.0.0.1). On a loopback address, callers without "
        "their own key use the server's; on any other, each caller must send 'Authorization: Bearer <key>'",
    )
    parser.add_argument("--port", help="port for HTTP transports, 1 to 65535 (default 8000)")
    parser.add_argument(
        "--log-level",
        metavar="LEVEL",
        help=f"log level on stderr: {', '.join(LOG_LEVELS)} (default WARNING, or RESPAN_LOG_LEVEL)",
    )
    parser.add_argument(
        "--timeout", metavar="SECONDS", help="seconds to wait for the API on each request, more than 0 (default 30)"
    )
    parser.add_argument(
        "--max-retries",
        metavar="N",
        help=f"retries after a connection error, a timeout, 429, 500, 502, 503 or 504, 0 to {MAX_RETRIES_MAX} (default 3)",
    )
    parser.add_argument(
        "--allow-server-key",
        action="store_true",
        default=None,
        help="over HTTP, let callers without their own key use the server's key on any bind and behind a "
        "proxy (or RESPAN_ALLOW_SERVER_KEY=1); only for a network where everyone who can reach the port may",
    )
    parser.add_argument(
        "--log-format",
        metavar="|".join(LOG_FORMATS),
        help="text (default, or RESPAN_LOG_FORMAT) or json: one JSON line per tool call on stderr with the tool, "
        "outcome, Respan's HTTP status, duration and request id (never the key or a score value)",
    )
    parser.add_argument(
        "--oauth-issuer",
        metavar="URL",
        help="HTTP transports: callers sign in with tokens from this OAuth authorization server (an https URL; "
        "or RESPAN_OAUTH_ISSUER); see the RESPAN_OAUTH_* variables below",
    )
    parser.add_argument(
        "--public-url",
        metavar="URL",
        help="the URL clients use to reach this server, behind a proxy the proxy's (default http://HOST:PORT; or "
        "RESPAN_PUBLIC_URL); tokens are issued for PUBLIC_URL/mcp (PUBLIC_URL/sse with --transport sse)",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    flags = vars(parse_args(argv))
    try:
        config = load_config(flags=flags)
    except ConfigError as error:
        print(f"respan-mcp: {error}", file=sys.stderr)
        sys.exit(2)
    for warning in config.warnings():
        print(f"respan-mcp: warning: {warning}", file=sys.stderr)
    try:
        transport_runner(config)(config)
    except KeyboardInterrupt:
        sys.exit(130)


def transport_runner(config: Config) -> Callable[[Config], None]:
    """The transport's `run(config)`, imported only now: --help and a refused setting never load the SDK."""
    module = importlib.import_module(
        "respan_mcp.serve_stdio" if config.transport == "stdio" else "respan_mcp.serve_http"
    )
    run: Callable[[Config], None] = module.run
    return run


if __name__ == "__main__":
    main()
