"""Use cases. Each public method owns one transaction through a unit of work."""
