"""`python -m ftstudio` is the same as the `ftstudio` command."""

from ftstudio.cli import main

main()
