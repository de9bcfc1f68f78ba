"""Entry point for ``python -m pilothouse.serving.modelserver``."""

import sys

from pilothouse.serving.modelserver.cli import main

sys.exit(main())
