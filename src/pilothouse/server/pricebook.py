"""The price book over the API: read it, and replace it without restarting the control plane.

``GET /apis/pilothouse.dev/v1alpha1/pricebook`` returns the book in force as the document
``up --price-book`` reads (docs/cost.md): every top-level price, defaults included, and each pool's
overrides, with prices as decimal strings. ``PUT`` of such a document (numbers or decimal strings)
replaces it whole: validated by the cost core's own parser, so a bad one is a 422 ``Status`` with one
cause per field (``pools.h100.gpuHour``) and changes nothing; a good one is saved in the data dir
first and then put in force, so later cost reports and budget checks use it and a restart keeps it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request

from pilothouse.api.meta import API_VERSION
from pilothouse.cost import load_price_book, price_book_document
from pilothouse.server.cost import cost_services
from pilothouse.server.status import status_response

router = APIRouter(prefix=f"/apis/{API_VERSION}", tags=["cost"])


@router.get("/pricebook")
def get_price_book(request: Request) -> dict[str, Any]:
    return price_book_document(cost_services(request).reports.prices.get())


@router.put("/pricebook")
def replace_price_book(request: Request, body: Annotated[Any, Body()]) -> Any:
    prices = cost_services(request).reports.prices
    book = load_price_book(body)  # ManifestError -> 422 naming each bad field; nothing is changed
    try:
        prices.replace(book)
    except OSError as exc:  # not saved, so not in force either
        return status_response(500, "InternalError", f"cannot save the price book: {exc}")
    return price_book_document(book)
