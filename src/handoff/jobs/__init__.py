"""Background jobs, run inside the server's task group (no extra process)."""
