"""Reading the logs agents already keep (Claude Code, Codex, aider, mini-swe-agent, SWE-agent)
into context entries, so a session can be captured without the agent's help."""
