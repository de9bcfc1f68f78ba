"""Where the active price book survives a restart: one JSON document in the control plane's data dir.

The price book is one piece of configuration, replaced whole (``PUT .../pricebook``), with no history,
watch or resourceVersion to keep; so it is a file beside the database, ``<data-dir>/pricebook.json``,
rather than a table that would need a schema migration. An operator can read it, back it up, or delete
it to go back to the defaults.

**Atomic**: ``save`` writes a temporary file in the same directory, fsyncs it, renames it over the old
one and fsyncs the directory, so after a crash at any point the file holds either the old book or the
new one, never a mix or a truncated file.

Records here are plain data (the document as the API shows it); validating it is the cost core's job
(``pilothouse.cost.load_price_book``), as the metering store keeps decimal strings and leaves pricing
to ``controllers.costing``.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol


class PriceBookStore(Protocol):
    """Durable storage of one price-book document."""

    def load(self) -> Any | None:
        """The saved document (decoded JSON, not yet validated), or None if none was saved."""
        ...

    def save(self, document: Mapping[str, Any]) -> None:
        """Replace the saved document atomically; raises ``OSError`` and leaves the old one if it cannot."""
        ...


class PriceBookFile:
    """``PriceBookStore`` as one JSON file, replaced by rename."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> Any | None:
        """Raises ``ValueError`` (``json.JSONDecodeError``) if the file is not JSON."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        return json.loads(text)

    def save(self, document: Mapping[str, Any]) -> None:
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(document, fh, indent=2, sort_keys=True)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a power cut
        finally:
            os.close(dir_fd)
