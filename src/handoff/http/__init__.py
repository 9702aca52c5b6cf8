"""The HTTP entry point: the MCP endpoint at /mcp plus health routes."""
