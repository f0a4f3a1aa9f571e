"""`respan-mcp --check`: is the configured key good for the configured Respan? One read, one line.

One read-only request (the first page of evaluators, one item) with the key and base URL the
server would use; the answer is one line on stdout that names the API it asked and either says
the key works (and how many evaluators it sees) or what is wrong and what to do. Nothing is
written, and the key is never shown: every message passes the client's redaction.
"""

from __future__ import annotations

import anyio
import httpx2

from respan_mcp import client as routes
from respan_mcp.client import RespanClient
from respan_mcp.config import Config
from respan_mcp.credentials import CREDENTIALS_FILE
from respan_mcp.errors import (
    APIConnectionError,
    AuthenticationError,
    ConnectionSetupError,
    NotFoundError,
    PermissionDeniedError,
    RespanError,
)
from respan_mcp.net import Caller

WORKS, FAILS = 0, 1


def check(config: Config, transport: httpx2.AsyncBaseTransport | None = None) -> tuple[int, str]:
    """(exit status, the line to print): 0 when the key works, 1 when it does not."""
    asked = config.api_url
    if not config.api_key:
        return FAILS, (
            f"no Respan API key to check against {asked}: set RESPAN_API_KEY, or run `respan login` "
            f"(its key is read from {CREDENTIALS_FILE}, the profile RESPAN_PROFILE names)"
        )
    return anyio.run(_ask, config, transport)


async def _ask(config: Config, transport: httpx2.AsyncBaseTransport | None) -> tuple[int, str]:
    asked = config.api_url
    client = RespanClient(config, transport=transport)
    caller = Caller(config.api_key or "", (config.api_key or "",))
    try:
        data = await client.send(caller, routes.search_evaluators(None, 1, 1), client.retry.once())
    except AuthenticationError as error:
        return FAILS, f"{asked} refused the key (401): {_said(error)} Get a key from the Respan dashboard."
    except PermissionDeniedError as error:
        return FAILS, f"{asked} knows the key but it may not read evaluators (403): {_said(error)}"
    except NotFoundError:
        return FAILS, (
            f"{asked} answered 404 for its evaluators: a wrong host, or a base URL without /api's API behind it; "
            "set RESPAN_BASE_URL to the API host, e.g. https://api.respan.ai"
        )
    except (APIConnectionError, ConnectionSetupError) as error:
        return FAILS, f"no answer from {asked}: {_said(error)}"
    except RespanError as error:
        return FAILS, f"{asked} did not accept the check: {_said(error)}"
    finally:
        await client.aclose()
    count = data.get("count") if isinstance(data, dict) else None
    sees = f"it sees {count} evaluator{'' if count == 1 else 's'}" if isinstance(count, int) else "it answered"
    return WORKS, f"the key works with {asked}: {sees}."


def _said(error: RespanError) -> str:
    return str(error).rstrip(".") + "."
