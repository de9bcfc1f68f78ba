"""Where the platform keeps its state and which addresses it uses, decided in one place.

Nothing reads the environment at import time: ``Settings.from_env()`` is called by the entry points, and
tests construct ``Settings`` directly with temporary directories and ephemeral ports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7420
DEFAULT_GATEWAY_PORT = 7421
SERVER_ENV = "PILOTHOUSE_SERVER"
DATA_DIR_ENV = "PILOTHOUSE_DATA_DIR"


def default_data_dir() -> Path:
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "pilothouse"


def default_server_url() -> str:
    return os.environ.get(SERVER_ENV) or f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=default_data_dir)
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    gateway_port: int = DEFAULT_GATEWAY_PORT
    accelerators: dict[str, int] | None = None
    """Declared accelerators (``{"nvidia.com/gpu": 4}``); None means discover them with NVML."""
    resync_seconds: float = 10.0
    scheduling_policy: str = "fair"
    """The job queue's policy (``fair``, ``fifo``, ``fifo-backfill``, ``sjf``, ``las``)."""
    # -- cost ------------------------------------------------------------------------------------------
    price_book: Path | None = None
    """A price-book YAML file (docs/cost.md) put in force at start; None: the book last set (through
    this option or ``PUT .../pricebook``) and saved in the data dir, else OpenCost's default prices."""
    metering_seconds: float = 10.0
    """How often the metering loop observes replicas and workers and samples their usage."""
    budget_seconds: float = 60.0
    """How often the month so far is priced for budgets (at least every metering pass)."""

    @property
    def database_path(self) -> Path:
        return self.data_dir / "pilothouse.db"

    @property
    def saved_price_book_path(self) -> Path:
        """The price book in force, saved so that a restart keeps it (``store.pricebook``)."""
        return self.data_dir / "pricebook.json"

    @property
    def runtime_dir(self) -> Path:
        return self.data_dir / "runtime"

    @property
    def lock_path(self) -> Path:
        return self.data_dir / "control-plane.lock"
