"""Puts this directory on sys.path so the suite can share ``sched_support`` (no tests/__init__.py)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
