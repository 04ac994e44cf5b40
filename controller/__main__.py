"""`python -m controller` is the same as the `kraft` command."""

from controller.cli import main

main()
