"""`python -m handoff`: the same as the `handoff` command."""

from handoff.entry import main

main()
