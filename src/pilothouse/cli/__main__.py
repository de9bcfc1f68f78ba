"""``python -m pilothouse.cli``: the same as the ``pilothouse`` console script."""

from pilothouse.cli.main import main

main()
