"""The MCP entry point: tools, resources and prompts over the services. Thin by design."""
