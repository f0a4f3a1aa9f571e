"""The floor respan-mcp is measured against: the server a user could write in 20 lines.

Same SDK (`MCPServer`), same log level as respan-mcp (WARNING; the SDK's default INFO
logs every request), same transports (the SDK's stdio server; stateless streamable HTTP),
and the same tool shape as respan-mcp's upsert_log_score: the SDK validates the arguments
with the model it builds from the signature, the tool forwards a POST through a module-level
client, and the answer goes back as structured content (validated against the `dict` return
type) and as JSON text. What it leaves out is respan-mcp's own work: the value-type and
evaluator checks, key policy and error wording. That is the cost the benchmark measures.
Run: RESPAN_API_KEY=... RESPAN_BASE_URL=http://127.0.0.1:PORT python benchmarks/baseline_server.py [PORT]
(stdio without a PORT; stateless streamable HTTP at http://127.0.0.1:PORT/mcp with one).
"""

import os
import sys
from typing import Any

import httpx2
from mcp.server import MCPServer

http = httpx2.AsyncClient(
    base_url=os.environ["RESPAN_BASE_URL"].rstrip("/") + "/api",
    headers={"Authorization": f"Bearer {os.environ['RESPAN_API_KEY']}"},
    timeout=30,
)
server = MCPServer("baseline", log_level="WARNING")


@server.tool()
async def upsert_log_score(log_id: str, evaluator_slug: str, numerical_value: float) -> dict[str, Any]:
    """Create or update the score a log has for one evaluator."""
    body = {"evaluator_slug": evaluator_slug, "numerical_value": numerical_value}
    response = await http.post(f"/logs/{log_id}/scores/", json=body)
    response.raise_for_status()
    return response.json()


if __name__ == "__main__":
    if len(sys.argv) > 1:
        server.run("streamable-http", port=int(sys.argv[1]), stateless_http=True)
    else:
        server.run("stdio")
