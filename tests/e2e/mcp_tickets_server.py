"""A real stdio MCP server (the official ``mcp`` Python SDK, 2.x) for the end-to-end tests: Claude
Code starts it from ``--mcp-config`` and calls its tools as ``mcp__tickets__<tool>``."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

server = MCPServer("tickets")


@server.tool()
def lookup_ticket(ticket_id: str) -> str:
    """The title of a ticket."""
    return f"ticket {ticket_id}: login page times out"


@server.tool()
def delete_ticket(ticket_id: str) -> str:
    """Delete a ticket."""
    return f"ticket {ticket_id} deleted"


if __name__ == "__main__":
    server.run()
