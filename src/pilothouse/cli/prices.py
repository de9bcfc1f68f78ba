"""``cost prices``: the price book the control plane prices with, shown or replaced over the API.

``GET``/``PUT .../pricebook`` through the client, nothing else: the server validates a new book
(errors name the field, and the old prices stay) and saves it, so later ``cost`` reports and budget
checks use it and it survives a restart. The file is the YAML (or JSON) of ``up --price-book``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.table import Table

from pilothouse.cli.context import command, err, fail, out, state

_OWN_PRICES = (
    ("cpuCoreHour", "cpu core"),
    ("memoryGiBHour", "memory GiB"),
    ("gpuHour", "accelerator (any without its own price)"),
)
ALL_POOLS = "(every pool)"


def price_rows(book: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(pool, resource, dollars per hour of one): the top-level prices, then each pool's overrides."""
    rows: list[tuple[str, str, str]] = []

    def add(pool: str, prices: Mapping[str, Any]) -> None:
        rows.extend((pool, label, f"${prices[key]}") for key, label in _OWN_PRICES if key in prices)
        accelerators: Mapping[str, Any] = prices.get("accelerators") or {}
        rows.extend((pool, name, f"${price}") for name, price in sorted(accelerators.items()))

    add(ALL_POOLS, book)
    pools: Mapping[str, Mapping[str, Any]] = book.get("pools") or {}
    for pool, prices in sorted(pools.items()):
        add(pool, prices)
    return rows


def render_table(book: Mapping[str, Any]) -> Table:
    table = Table(
        title="price book (US dollars per hour of one unit; a pool shows only what it overrides)",
        box=None,
        pad_edge=False,
        header_style="bold",
        title_justify="left",
    )
    table.add_column("POOL")
    table.add_column("RESOURCE")
    table.add_column("$ PER HOUR", justify="right")
    for row in price_rows(book):
        table.add_row(*row)
    return table


def _read(path: Path) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"--set: cannot read {path}: {exc.strerror}")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        fail(f"--set: {path} is not YAML: {exc}")
    if document is None:  # an empty file: every price at its default, as with `up --price-book`
        return {}
    if not isinstance(document, dict):
        fail(f"--set: {path}: a price book must be a mapping, got {type(document).__name__}")
    return document


@command
def prices(
    ctx: typer.Context,
    set_file: Annotated[
        Path | None,
        typer.Option(
            "--set",
            help="Replace the price book with this YAML or JSON file ('-' reads stdin); "
            "later cost reports and budget checks use it",
        ),
    ] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="table, json or yaml")] = "table",
) -> None:
    """Show the price book costs are computed with, or replace it (--set FILE)."""
    if output not in ("table", "json", "yaml"):
        fail(f"--output: expected table, json or yaml, got {output!r}")
    cli = state(ctx)
    if cli.cluster:
        fail("the price book belongs to the embedded control plane (pilothouse up); not on a cluster yet")
    new = _read(set_file) if set_file is not None else None
    with cli.client() as client:
        book = client.price_book() if new is None else client.set_price_book(new)
    if set_file is not None:
        err.print(f"price book replaced from {set_file}", markup=False)
    if output == "json":
        out.print(json.dumps(book, indent=2), markup=False, highlight=False, soft_wrap=True)
    elif output == "yaml":
        out.print(yaml.safe_dump(book, sort_keys=False).rstrip(), markup=False, highlight=False)
    else:
        out.print(render_table(book))
