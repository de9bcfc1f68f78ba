"""Which price book ``pilothouse up`` starts with, decided before anything else starts.

1. ``--price-book FILE`` given: that file, which is also saved in the data dir (it is the book in
   force now, and ``PUT .../pricebook`` may replace it later). An explicit option wins over a book
   set earlier through the API; the log says so when it replaces a different one.
2. Otherwise the book saved in the data dir (``<data-dir>/pricebook.json``): the last one set, through
   the option or the API, so a price change survives a restart.
3. Otherwise OpenCost's default prices.

A bad file, or a saved book that no longer validates (edited by hand), stops ``up`` with the file and
the field named, before any port is served or any replica started.
"""

from __future__ import annotations

import logging
from pathlib import Path

import yaml

from pilothouse.api.errors import ManifestError
from pilothouse.controllers.prices import ActivePrices
from pilothouse.cost import PriceBook, load_price_book, price_book_document
from pilothouse.embedded.guards import StartupError
from pilothouse.settings import Settings
from pilothouse.store.pricebook import PriceBookFile

log = logging.getLogger(__name__)


def read_price_book(path: Path | None) -> PriceBook:
    """The price book from ``up --price-book FILE``, or OpenCost's defaults; a bad file stops ``up``."""
    if path is None:
        return PriceBook()
    try:
        return load_price_book(yaml.safe_load(path.read_text()), source=str(path))
    except OSError as exc:
        raise StartupError(f"--price-book: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise StartupError(f"--price-book: {path} is not YAML: {exc}") from None
    except ManifestError as exc:
        raise StartupError(f"--price-book: {exc}") from None


def _saved_book(saved: PriceBookFile) -> PriceBook | None:
    hint = "fix or delete it, or start with --price-book FILE"
    try:
        document = saved.load()
    except (OSError, ValueError) as exc:
        raise StartupError(f"cannot read the saved price book {saved.path}: {exc}; {hint}") from None
    if document is None:
        return None
    try:
        return load_price_book(document, source=str(saved.path))
    except ManifestError as exc:
        raise StartupError(f"the saved price book is invalid: {exc}; {hint}") from None


def open_prices(settings: Settings) -> ActivePrices:
    """The price book ``up`` starts with (see the module docstring), saved where the API saves it."""
    saved = PriceBookFile(settings.saved_price_book_path)
    if settings.price_book is None:
        book = _saved_book(saved)
        if book is not None:
            log.info("price book: %s (set earlier; --price-book replaces it)", saved.path)
        return ActivePrices(book, saved)
    book = read_price_book(settings.price_book)
    try:
        earlier = _saved_book(saved)
    except StartupError:
        earlier = None  # about to be overwritten by the option's book anyway
    if earlier != book:
        if earlier is not None:
            log.warning("--price-book %s replaces the price book set earlier", settings.price_book)
        try:
            saved.save(price_book_document(book))
        except OSError as exc:
            raise StartupError(f"cannot save the price book to {saved.path}: {exc}") from None
    return ActivePrices(book, saved)
