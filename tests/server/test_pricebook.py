"""The price book over the API: GET/PUT round trip, 422s that name the field and change nothing, reports
priced with the new book at once, and the book saved so that a restarted control plane keeps it.

Amounts are computed by hand from ``CostPlane.run_endpoint_for_an_hour``: one replica asking 2 cores
and 1 GiB for one hour, with no usage samples, so it is charged 2 core-hours and 1 GiB-hour.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from cost_plane import FIRST_HOUR, CostPlane, cost_plane
from pilothouse.client import ApiError
from pilothouse.cost import load_price_book
from pilothouse.embedded.guards import StartupError
from pilothouse.embedded.prices import open_prices
from pilothouse.settings import Settings

PRICEBOOK = "/apis/pilothouse.dev/v1alpha1/pricebook"
DEFAULTS = {
    "cpuCoreHour": "0.031611",
    "memoryGiBHour": "0.004237",
    "gpuHour": "0.95",
    "accelerators": {},
    "pools": {},
}
DOCS_EXAMPLE = """
cpuCoreHour: 0.031611
memoryGiBHour: 0.004237
gpuHour: 0.95
accelerators:
  nvidia.com/gpu:H100: 2.99
  amd.com/gpu: 1.10
pools:
  a100-spot:
    gpuHour: 0.55
  h100:
    cpuCoreHour: 0.05
    accelerators:
      nvidia.com/gpu:H100: 2.10
"""


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[CostPlane]:
    with cost_plane(tmp_path / "data") as p:
        yield p


def chat_row(http: httpx.Client, exact: bool = False) -> dict[str, Any]:
    params = {"window": FIRST_HOUR, "by": "endpoint", "exact": str(exact).lower()}
    report = http.get("/apis/pilothouse.dev/v1alpha1/cost", params=params).json()
    [row] = [r for r in report["items"] if r["name"] == "chat"]
    return row


def test_get_shows_the_defaults_and_put_round_trips_the_docs_example(plane: CostPlane) -> None:
    with httpx.Client(base_url=plane.url, timeout=10) as http:
        assert http.get(PRICEBOOK).json() == DEFAULTS
        put = http.put(PRICEBOOK, json=yaml.safe_load(DOCS_EXAMPLE))
        assert put.status_code == 200, put.text
        book = put.json()
        assert book["accelerators"] == {"nvidia.com/gpu:H100": "2.99", "amd.com/gpu": "1.1"}
        assert book["pools"]["a100-spot"]["gpuHour"] == "0.55"  # YAML floats stay exact
        assert "cpuCoreHour" not in book["pools"]["a100-spot"]  # a pool shows only its overrides
        assert book["pools"]["h100"]["accelerators"] == {"nvidia.com/gpu:H100": "2.1"}
        assert http.get(PRICEBOOK).json() == book
        again = http.put(PRICEBOOK, json=book)  # what GET shows is what PUT takes
        assert again.status_code == 200 and again.json() == book


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({"cpuCoreHour": -1}, "cpuCoreHour", "greater than or equal to 0"),
        ({"pools": {"h100": {"gpuHours": 2}}}, "pools.h100.gpuHours", "unknown field"),
        ({"pools": {"h100": {"gpuHour": "cheap"}}}, "pools.h100.gpuHour", "decimal"),
        ({"accelerators": {"gpu": 1}}, "accelerators", "invalid accelerator 'gpu'"),
        ({"memoryGiBHour": "NaN"}, "memoryGiBHour", "finite"),
        ([1, 2], "", "must be a mapping"),
    ],
)
def test_a_bad_price_book_is_a_422_naming_the_field_and_changes_nothing(
    plane: CostPlane, body: Any, field: str, fragment: str
) -> None:
    with httpx.Client(base_url=plane.url, timeout=10) as http:
        good = {"cpuCoreHour": "1.25"}
        assert http.put(PRICEBOOK, json=good).status_code == 200
        saved = plane.settings.saved_price_book_path.read_text()
        response = http.put(PRICEBOOK, json=body)
        assert response.status_code == 422
        status = response.json()
        assert (status["kind"], status["reason"], status["code"]) == ("Status", "Invalid", 422)
        causes = {c["field"]: c["message"] for c in status["details"]["causes"]}
        assert field in causes and fragment in causes[field], causes
        assert http.get(PRICEBOOK).json()["cpuCoreHour"] == "1.25"  # the old book is still in force
        assert plane.settings.saved_price_book_path.read_text() == saved  # and still the saved one


def test_a_report_priced_after_a_put_uses_the_new_prices(plane: CostPlane) -> None:
    plane.run_endpoint_for_an_hour()
    with httpx.Client(base_url=plane.url, timeout=10) as http:
        # Defaults: cpu 2 core-h x $0.031611 = $0.063222 -> $0.06; memory 1 GiB-h x $0.004237 -> $0.00;
        # total $0.067459 -> $0.07.
        before = chat_row(http)
        assert (before["cpu_cost"], before["memory_cost"], before["total_cost"]) == ("0.06", "0.00", "0.07")
        assert chat_row(http, exact=True)["total_cost"] == "0.067459000"
        assert http.put(PRICEBOOK, json={"cpuCoreHour": 1.25, "memoryGiBHour": "0.5"}).status_code == 200
        # New book: cpu 2 core-h x $1.25 = $2.50; memory 1 GiB-h x $0.50 = $0.50; total $3.00.
        after = chat_row(http)
        assert (after["cpu_cost"], after["memory_cost"], after["total_cost"]) == ("2.50", "0.50", "3.00")
        # The month so far (what budgets judge) is priced with the same book.
        spend = plane.reports.month_to_date(plane.reports.clock())
        assert spend == {"nlp": 3}


def test_concurrent_puts_leave_memory_and_file_agreeing_and_reports_never_mix_books(
    plane: CostPlane,
) -> None:
    plane.run_endpoint_for_an_hour()
    # 2 core-h and 1 GiB-h: each book gives its own total; a mix of two books would give another one.
    books = {"1": "1", "2": "3", "4": "7", "8": "15"}  # cpuCoreHour -> memoryGiBHour
    totals = {2 * int(cpu) + int(mem) for cpu, mem in books.items()} | {3}  # 3: the first book below
    plane.reports.prices.replace(load_price_book({"cpuCoreHour": 1, "memoryGiBHour": 1}))
    seen: list[Decimal] = []
    done = threading.Event()

    def put(cpu: str, memory: str) -> None:
        with httpx.Client(base_url=plane.url, timeout=10) as http:
            for _ in range(10):
                assert (
                    http.put(PRICEBOOK, json={"cpuCoreHour": cpu, "memoryGiBHour": memory}).status_code == 200
                )

    def price() -> None:
        while not done.is_set():
            seen.append(plane.reports.month_to_date(plane.reports.clock())["nlp"])

    reader = threading.Thread(target=price)
    reader.start()
    writers = [threading.Thread(target=put, args=item) for item in books.items()]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
    done.set()
    reader.join(60)
    assert seen and {int(total) for total in seen} <= totals and all(t == int(t) for t in seen)
    saved = json.loads(plane.settings.saved_price_book_path.read_text())
    with httpx.Client(base_url=plane.url, timeout=10) as http:
        assert http.get(PRICEBOOK).json() == saved  # the last PUT won in both places


def test_the_client_reads_and_replaces_the_book(plane: CostPlane) -> None:
    with plane.client() as client:
        assert client.price_book() == DEFAULTS
        assert client.set_price_book({"gpuHour": 2})["gpuHour"] == "2"
        with pytest.raises(ApiError) as caught:
            client.set_price_book({"gpuHour": -2})
        assert caught.value.code == 422 and caught.value.causes[0]["field"] == "gpuHour"
        assert client.price_book()["gpuHour"] == "2"


def test_the_book_is_saved_and_a_restarted_control_plane_starts_with_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with cost_plane(data) as first, first.client() as client:
        client.set_price_book({"cpuCoreHour": "0.5", "pools": {"spot": {"gpuHour": "0.3"}}})
        saved = json.loads(first.settings.saved_price_book_path.read_text())
    assert saved["cpuCoreHour"] == "0.5" and saved["pools"] == {"spot": {"gpuHour": "0.3"}}
    assert not list(data.glob(".pricebook.json.*"))  # no temp file left behind by the atomic write
    with cost_plane(data) as second, second.client() as client:  # a restart: same data dir
        book = client.price_book()
        assert book["cpuCoreHour"] == "0.5" and book["pools"]["spot"]["gpuHour"] == "0.3"
        second.run_endpoint_for_an_hour()
        with httpx.Client(base_url=second.url, timeout=10) as http:
            assert chat_row(http)["cpu_cost"] == "1.00"  # 2 core-h x $0.50


def test_price_book_option_wins_over_the_saved_book_and_is_saved(tmp_path: Path) -> None:
    data = tmp_path / "data"
    option = tmp_path / "prices.yaml"
    option.write_text("cpuCoreHour: 3600\n")
    with cost_plane(data) as plane, plane.client() as client:
        client.set_price_book({"cpuCoreHour": "0.5"})
    prices = open_prices(Settings(data_dir=data, price_book=option))
    assert str(prices.get().cpuCoreHour) == "3600"
    # Restarted without the option: the book the option set, which was saved.
    assert str(open_prices(Settings(data_dir=data)).get().cpuCoreHour) == "3600"


def test_a_corrupt_saved_book_stops_up_naming_the_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    settings.saved_price_book_path.write_text('{"cpuCoreHour": "-1"}')
    with pytest.raises(StartupError, match=r"pricebook\.json: cpuCoreHour: .*greater than or equal to 0"):
        open_prices(settings)
    settings.saved_price_book_path.write_text("{not json")
    with pytest.raises(StartupError, match="cannot read the saved price book"):
        open_prices(settings)
    # An explicit --price-book still starts, and replaces the broken file.
    option = tmp_path / "prices.yaml"
    option.write_text("gpuHour: 1.5\n")
    assert str(open_prices(Settings(data_dir=tmp_path, price_book=option)).get().gpuHour) == "1.5"
    assert json.loads(settings.saved_price_book_path.read_text())["gpuHour"] == "1.5"
