"""respan-mcp: an MCP server that lets AI agents write evaluation scores into Respan."""
