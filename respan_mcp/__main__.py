"""Command line: flags and environment -> Config -> serve. No logic of its own."""

from __future__ import annotations

import argparse
import sys

from respan_mcp.config import ENVIRONMENT_VARIABLES, load_config

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    environment = "\n".join(f"  {name:<22}{meaning}" for name, meaning in ENVIRONMENT_VARIABLES.items())
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
    parser.add_argument("--host", default="127.0.0.1", help="address to bind for HTTP transports (default 127.0.0.1)")
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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = load_config().with_overrides(log_level=args.log_level, timeout=args.timeout, max_retries=args.max_retries)

    from respan_mcp.transports import serve  # after parsing, so --help does not pay for the SDK import

    try:
        serve(config, transport=args.transport, host=args.host, port=args.port)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
