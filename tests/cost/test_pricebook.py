"""The price book: OpenCost's defaults, pool overrides, model prices, and errors that name the field."""

from __future__ import annotations

from decimal import Decimal

import pytest
import yaml

from pilothouse.api import ManifestError
from pilothouse.cost import LOCAL_POOL, PriceBook, load_price_book, price_book_document

D = Decimal

CONFIG = """
cpuCoreHour: 0.031611
memoryGiBHour: 0.004237
gpuHour: 0.95
accelerators:
  nvidia.com/gpu:H100: 2.99
pools:
  a100-spot:
    gpuHour: 0.55
  h100:
    cpuCoreHour: "0.05"
    accelerators:
      nvidia.com/gpu:H100: 2.10
"""


def test_defaults_are_opencosts() -> None:
    rates = PriceBook().rates(LOCAL_POOL)
    assert (rates.cpu_core_hour, rates.memory_gib_hour, rates.gpu_hour) == (
        D("0.031611"),
        D("0.004237"),
        D("0.95"),
    )
    assert load_price_book(None) == PriceBook() == load_price_book({})


def test_yaml_config_and_pool_resolution() -> None:
    book = load_price_book(yaml.safe_load(CONFIG))
    spot, h100, other = book.rates("a100-spot"), book.rates("h100"), book.rates("unknown-pool")
    # a pool inherits what it does not set (floats arrive exact: 0.55 is 0.55, not 0.55000000000000004)
    assert (spot.gpu_hour, spot.cpu_core_hour, spot.memory_gib_hour) == (
        D("0.55"),
        D("0.031611"),
        D("0.004237"),
    )
    assert spot.accelerator("nvidia.com/gpu") == D("0.55")
    assert spot.accelerator("nvidia.com/gpu:H100") == D("2.99")  # the book's model price is inherited
    assert h100.accelerator("nvidia.com/gpu:H100") == D("2.10")  # the pool's own model price wins
    assert h100.cpu_core_hour == D("0.05")
    # lookup order: exact key, key without the model, then gpuHour
    assert other.accelerator("nvidia.com/gpu:L4") == D("0.95")
    assert other.accelerator("amd.com/gpu") == D("0.95")


def test_base_resource_price_applies_to_every_model() -> None:
    book = load_price_book({"accelerators": {"nvidia.com/gpu": 1.5, "nvidia.com/gpu:H100": 3}})
    rates = book.rates(LOCAL_POOL)
    assert rates.accelerator("nvidia.com/gpu:A10") == D("1.5")
    assert rates.accelerator("nvidia.com/gpu:H100") == D(3)


@pytest.mark.parametrize(
    ("config", "path", "message"),
    [
        ({"cpuCoreHour": -1}, "cpuCoreHour", "greater than or equal to 0"),
        ({"gpuHour": "cheap"}, "gpuHour", "decimal"),
        ({"gpuHour": "NaN"}, "gpuHour", "finite"),
        ({"gpuHours": 1}, "gpuHours", "unknown field"),
        ({"pools": {"h100": {"gpuHour": -0.5}}}, "pools.h100.gpuHour", "greater than or equal to 0"),
        ({"pools": {"h100": {"gpuHours": 2}}}, "pools.h100.gpuHours", "unknown field"),
        ({"pools": {"H100 Pool": {}}}, "pools", "invalid pool name 'H100 Pool'"),
        ({"accelerators": {"gpu": 1}}, "accelerators", "invalid accelerator 'gpu'"),
        (
            {"pools": {"p": {"accelerators": {"nvidia.com/gpu:": 1}}}},
            "pools.p.accelerators",
            "invalid accelerator",
        ),
        (
            {"pools": {"p": {"accelerators": {"nvidia.com/gpu": -1}}}},
            "pools.p.accelerators.nvidia.com/gpu",
            "0",
        ),
    ],
)
def test_errors_name_the_field(config: dict[str, object], path: str, message: str) -> None:
    with pytest.raises(ManifestError) as caught:
        load_price_book(config, source="cost.yaml")
    (problem,) = caught.value.problems
    assert problem.path == path
    assert message in problem.message
    assert str(caught.value).startswith(f"cost.yaml: {path}: ")


def test_several_errors_are_all_reported() -> None:
    with pytest.raises(ManifestError) as caught:
        load_price_book({"cpuCoreHour": -1, "pools": {"x": {"memoryGiBHour": -2}}})
    assert sorted(p.path for p in caught.value.problems) == ["cpuCoreHour", "pools.x.memoryGiBHour"]


def test_a_non_mapping_is_refused() -> None:
    with pytest.raises(ManifestError, match="a price book must be a mapping, got list"):
        load_price_book([1, 2])  # type: ignore[arg-type]


def test_the_document_form_reads_back_to_the_same_book() -> None:
    book = load_price_book(yaml.safe_load(CONFIG))
    document = price_book_document(book)
    assert load_price_book(document) == book
    assert document["gpuHour"] == "0.95" and document["accelerators"] == {"nvidia.com/gpu:H100": "2.99"}
    # a pool says only what it overrides; decimal strings, so nothing goes through a float
    assert document["pools"] == {
        "a100-spot": {"gpuHour": "0.55"},
        "h100": {"cpuCoreHour": "0.05", "accelerators": {"nvidia.com/gpu:H100": "2.1"}},
    }
    assert price_book_document(PriceBook())["cpuCoreHour"] == "0.031611"
