"""Domain: models, the session state machine and the brief builder. Standard library only, no I/O."""
