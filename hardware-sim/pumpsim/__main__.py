"""`python -m pumpsim` is the `pumpsim` command."""

from pumpsim.cli import main

main()
