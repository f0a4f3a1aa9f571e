"""Command line: flags and environment -> Config -> serve. No logic of its own."""

from __future__ import annotations

import argparse
import sys

from respan_mcp.config import ENVIRONMENT_VARIABLES, LOG_FORMATS, load_config

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    width = max(map(len, ENVIRONMENT_VARIABLES)) + 2
    environment = "\n".join(f"  {name:<{width}}{meaning}" for name, meaning in ENVIRONMENT_VARIABLES.items())
    parser = argparse.ArgumentParser(
        prog="respan-mcp",
        description="MCP server that lets AI agents write evaluation scores into Respan.",
        epilog=f"environment variables:\n{environment}\n\nFlags win over environment variables.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--transport",
        choices=("stdio", "sse", "streamable-http"),
        default="stdio",
        help="stdio (default) for a host that starts the server; sse (served at /sse) or "
        "streamable-http (served at /mcp, stateless) to serve over HTTP",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind for HTTP transports (default 127.0.0.1). On a loopback address, callers without "
        "their own key use the server's; on any other, each caller must send 'Authorization: Bearer <key>'",
    )
    parser.add_argument("--port", type=int, default=8000, help="port for HTTP transports (default 8000)")
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        help="log level on stderr (default WARNING, or RESPAN_LOG_LEVEL)",
    )
    parser.add_argument("--timeout", type=float, help="seconds to wait for the API on each request (default 30)")
    parser.add_argument(
        "--max-retries", type=int, help="retries after a connection error, 429, 502, 503 or 504 (default 3)"
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
        choices=LOG_FORMATS,
        help="text (default, or RESPAN_LOG_FORMAT) or json: one JSON line per tool call on stderr with the tool, "
        "outcome, Respan's HTTP status, duration and request id (never the key or a score value)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = load_config().with_overrides(
        log_level=args.log_level,
        timeout=args.timeout,
        max_retries=args.max_retries,
        allow_server_key=args.allow_server_key,
        log_format=args.log_format,
    )

    from respan_mcp.serve_http import serve  # after parsing, so --help does not pay for the SDK import

    try:
        serve(config, transport=args.transport, host=args.host, port=args.port)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
