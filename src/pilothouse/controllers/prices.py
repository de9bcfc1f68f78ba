"""The price book in force, replaceable while the control plane runs (``PUT .../pricebook``).

Everything that prices (``CostReports``: the cost API and the metering loop's budget pricing) asks
``ActivePrices.get()`` once per pricing and uses that one book throughout, so no report or budget
figure is ever priced half with the old prices and half with the new. A ``PriceBook`` is never
mutated after it is handed over: a change swaps the whole object, and reading one reference is atomic,
so readers take no lock.

``replace`` is serialised under a lock and **saves before it swaps**: the saved document and the book
in memory always agree, a failed save (disk full) raises and changes nothing, and a restart comes back
with the last book that was accepted. Listeners (the metering loop) are told after the swap, so budgets
are repriced on its next pass instead of up to a budget interval later.

Validation is not done here: callers parse input with ``pilothouse.cost.load_price_book`` first.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from pilothouse.cost import PriceBook, price_book_document
from pilothouse.store.pricebook import PriceBookStore

log = logging.getLogger(__name__)


class ActivePrices:
    def __init__(self, book: PriceBook | None = None, store: PriceBookStore | None = None) -> None:
        self._book = book if book is not None else PriceBook()
        self._store = store
        self._lock = threading.Lock()
        self._listeners: list[Callable[[PriceBook], None]] = []

    def get(self) -> PriceBook:
        """The book in force now; price one report or one budget pass with this one object."""
        return self._book

    def replace(self, book: PriceBook) -> None:
        """Save ``book`` (if a store is set), then put it in force and tell the listeners."""
        book = book.model_copy(deep=True)  # ours alone: nobody can mutate a book in force
        with self._lock:
            if self._store is not None:
                self._store.save(price_book_document(book))
            self._book = book
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(book)
            except Exception:
                log.exception("a price-book listener failed; the new prices are in force")

    def on_change(self, listener: Callable[[PriceBook], None]) -> None:
        """Call ``listener(book)`` after every ``replace``."""
        with self._lock:
            self._listeners.append(listener)
