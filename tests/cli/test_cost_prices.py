"""``pilothouse cost prices``: the price book shown as a table, JSON or YAML, and replaced from a file,
all through the HTTP API of an in-process control plane (the CLI is only a client)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from cost_plane import FIRST_HOUR, CostPlane, cost_plane
from pilothouse.cli.main import app


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[CostPlane]:
    with cost_plane(tmp_path / "data") as p:
        yield p


def cli(plane: CostPlane, *args: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(app, ["--server", plane.url, *args], input=stdin)


def test_prices_table_shows_every_price_and_pool_overrides(plane: CostPlane) -> None:
    result = cli(plane, "cost", "prices")
    assert result.exit_code == 0, result.output
    assert "(every pool)" in result.stdout and "cpu core" in result.stdout
    assert "$0.031611" in result.stdout and "$0.004237" in result.stdout and "$0.95" in result.stdout
    with plane.client() as client:
        client.set_price_book(
            {"accelerators": {"nvidia.com/gpu:H100": 2.99}, "pools": {"spot": {"gpuHour": 0.55}}}
        )
    lines = cli(plane, "cost", "prices").stdout.splitlines()
    assert any("(every pool)" in line and "nvidia.com/gpu:H100" in line and "$2.99" in line for line in lines)
    [spot] = [line for line in lines if line.startswith("spot")]
    assert (
        "accelerator (any without its own price)" in spot and "$0.55" in spot
    )  # a pool lists only what it overrides


def test_set_replaces_the_book_and_later_reports_use_it(plane: CostPlane, tmp_path: Path) -> None:
    plane.run_endpoint_for_an_hour()
    new = tmp_path / "prices.yaml"
    new.write_text("cpuCoreHour: 1.25\nmemoryGiBHour: 0.5\n")
    result = cli(plane, "cost", "prices", "--set", str(new), "-o", "json")
    assert result.exit_code == 0, result.output
    assert "price book replaced" in result.stderr
    assert json.loads(result.stdout)["cpuCoreHour"] == "1.25"
    shown = yaml.safe_load(cli(plane, "cost", "prices", "-o", "yaml").stdout)
    assert shown["cpuCoreHour"] == "1.25" and shown["memoryGiBHour"] == "0.5"
    # `cost` itself is unchanged by becoming a group: 2 core-h x $1.25 + 1 GiB-h x $0.50 = $3.00
    report = json.loads(cli(plane, "cost", "--by", "endpoint", "--window", FIRST_HOUR, "-o", "json").stdout)
    assert report["total"]["total_cost"] == "3.00"
    # What -o yaml printed is a file --set takes back (here from stdin).
    again = cli(plane, "cost", "prices", "--set", "-", stdin=yaml.safe_dump(shown))
    assert again.exit_code == 0, again.output


def test_a_bad_file_names_the_field_and_keeps_the_old_prices(plane: CostPlane, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("pools:\n  h100:\n    gpuHour: -3\n")
    result = cli(plane, "cost", "prices", "--set", str(bad))
    assert result.exit_code == 1
    assert "pools.h100.gpuHour" in result.stderr and "greater than or equal to 0" in result.stderr
    with plane.client() as client:
        assert client.price_book()["pools"] == {}
    not_yaml = tmp_path / "broken.yaml"
    not_yaml.write_text("cpuCoreHour: [1\n")
    result = cli(plane, "cost", "prices", "--set", str(not_yaml))
    assert result.exit_code == 1 and "is not YAML" in result.stderr
    missing = cli(plane, "cost", "prices", "--set", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 1 and "cannot read" in missing.stderr
    assert cli(plane, "cost", "prices", "-o", "csv").exit_code == 1
