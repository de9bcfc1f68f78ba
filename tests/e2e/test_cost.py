"""Cost end to end: a real ``pilothouse up`` meters what it runs, prices it, and budgets act on it.

Prices come from a price book given with ``up --price-book`` (a CPU core-hour at $3,600, i.e. $1 per
core-second) so a few seconds of one replica cost real dollars; metering and budget pricing run every
half second so the tests finish in seconds.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from support import ControlPlane, wait_for

pytestmark = pytest.mark.slow

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
BODY = {"inputs": [{"name": "input-0", "shape": [len(ROWS), 4], "datatype": "FP64", "data": ROWS}]}
FAST = ["--metering-interval", "0.5", "--budget-interval", "0.5"]


def write(path: Path, *docs: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump_all(docs))
    return path


def price_book(tmp_path: Path) -> Path:
    return write(tmp_path / "prices.yaml", {"cpuCoreHour": 3600, "memoryGiBHour": 0.004237})


def endpoint(name: str, namespace: str, model: Path) -> dict[str, Any]:
    return {
        "apiVersion": "pilothouse.dev/v1alpha1",
        "kind": "ModelEndpoint",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"model": {"uri": str(model)}, "resources": {"cpu": "1"}},
    }


def cost_json(plane: ControlPlane, *args: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(plane.cli("cost", *args, "-o", "json").stdout)
    return result


def test_cost_by_endpoint_shows_what_a_replica_cost_and_its_requests(
    control_plane_factory: Any, tmp_path: Path, iris_model: Path
) -> None:
    plane = control_plane_factory(extra_args=["--price-book", str(price_book(tmp_path)), *FAST])
    plane.cli(
        "apply", "-f", str(write(tmp_path / "me.yaml", endpoint("iris", "default", iris_model))), "--wait"
    )
    url = json.loads(plane.cli("get", "me", "iris", "-o", "json").stdout)["status"]["url"]
    for _ in range(5):
        assert httpx.post(f"{url}/v2/models/iris/infer", json=BODY, timeout=10).status_code == 200

    def iris_row() -> dict[str, Any] | None:
        items = cost_json(plane, "--by", "endpoint", "--window", "1h")["items"]
        row = next((r for r in items if r["name"] == "iris"), None)
        return row if row and row["requests"] >= 5 else None

    row = wait_for(iris_row, timeout=20, what="iris priced with its 5 requests")
    assert row["team"] == "default" and Decimal(row["total_cost"]) > 0
    assert Decimal(row["cpu_cost"]) > 0 and row["cost_per_1k_requests"] is not None

    by_team = cost_json(plane, "--by", "team", "--window", "1h")
    assert {r["team"] for r in by_team["items"]} >= {"default"}
    assert Decimal(by_team["total"]["total_cost"]) >= Decimal(row["total_cost"])
    table = plane.cli("cost", "--by", "revision").stdout
    assert "iris" in table and "TOTAL" in table and "$ / 1K REQ" in table
    csv = plane.cli("cost", "--by", "endpoint", "-o", "csv", "--exact").stdout
    assert csv.splitlines()[0].startswith("team,name,cpu_core_hours")
    bad = plane.cli("cost", "--window", "fortnight", check=False)
    assert bad.returncode == 1 and "window" in bad.stderr


def test_team_over_budget_has_new_jobs_held_and_new_endpoints_refused(
    control_plane_factory: Any, tmp_path: Path, iris_model: Path
) -> None:
    plane = control_plane_factory(extra_args=["--price-book", str(price_book(tmp_path)), *FAST])
    team = {
        "apiVersion": "pilothouse.dev/v1alpha1",
        "kind": "Team",
        "metadata": {"name": "lab"},
        "spec": {
            "budget": {
                "monthlyAmount": 2,
                "thresholds": [0.5, 1.0],
                "actions": ["hold-jobs", "refuse-endpoints"],
            }
        },
    }
    plane.cli("apply", "-f", str(write(tmp_path / "team.yaml", team, endpoint("iris", "lab", iris_model))))

    def exceeded() -> str | None:
        status = json.loads(plane.cli("get", "team", "lab", "-o", "json").stdout)["status"]
        state: str | None = status.get("budgetState")
        return state if state and state.startswith("exceeded") else None

    state = wait_for(exceeded, timeout=30, what="team lab over its $2 budget")
    assert "monthly budget" in state and "new jobs are held" in state

    job = {
        "apiVersion": "pilothouse.dev/v1alpha1",
        "kind": "Job",
        "metadata": {"name": "train", "namespace": "lab"},
        "spec": {"command": ["python", "-c", "print(1)"]},
    }
    plane.cli("apply", "-f", str(write(tmp_path / "job.yaml", job)))

    def held() -> dict[str, Any] | None:
        status: dict[str, Any] = json.loads(
            plane.cli("get", "job", "train", "-n", "lab", "-o", "json").stdout
        )["status"]
        return status if status.get("reason") == "BudgetExceeded" else None

    status = wait_for(held, timeout=15, what="job held by the budget")
    assert status["phase"] == "Pending" and "monthly budget" in status["message"]
    queue = plane.cli("queue").stdout
    assert "train" in queue and "monthly budget" in queue
    assert "monthly budget" in plane.cli("describe", "job", "train", "-n", "lab").stdout
    described = plane.cli("describe", "team", "lab").stdout
    assert "$2.00 per calendar month" in described and "hold-jobs, refuse-endpoints" in described
    assert "Budget state: exceeded: team lab has spent" in described

    refused = plane.cli(
        "apply", "-f", str(write(tmp_path / "more.yaml", endpoint("wine", "lab", iris_model))), check=False
    )
    assert refused.returncode == 1
    assert "metadata.namespace" in refused.stderr and "budget" in refused.stderr
    # Scaling the running endpoint up is refused too; running work itself is never stopped.
    scaled = endpoint("iris", "lab", iris_model)
    scaled["spec"]["autoscaling"] = {"minReplicas": 2, "maxReplicas": 3}
    refused = plane.cli("apply", "-f", str(write(tmp_path / "scale.yaml", scaled)), check=False)
    assert refused.returncode == 1 and "spec.autoscaling" in refused.stderr
    # Another team is not affected.
    other = plane.cli(
        "apply", "-f", str(write(tmp_path / "ok.yaml", endpoint("wine", "default", iris_model)))
    )
    assert "created" in other.stdout


def test_prices_set_through_the_cli_are_used_and_survive_a_restart(
    control_plane_factory: Any, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    plane = control_plane_factory(data_dir=data, extra_args=FAST)
    assert json.loads(plane.cli("cost", "prices", "-o", "json").stdout)["cpuCoreHour"] == "0.031611"
    result = plane.cli("cost", "prices", "--set", str(price_book(tmp_path)), "-o", "json")
    assert json.loads(result.stdout)["cpuCoreHour"] == "3600"
    bad = plane.cli(
        "cost", "prices", "--set", str(write(tmp_path / "bad.yaml", {"gpuHour": -1})), check=False
    )
    assert bad.returncode == 1 and "gpuHour" in bad.stderr
    assert plane.stop() == 0
    again = control_plane_factory(data_dir=data, extra_args=FAST)  # no --price-book: the saved book
    assert json.loads(again.cli("cost", "prices", "-o", "json").stdout)["cpuCoreHour"] == "3600"
    assert "$3600" in again.cli("cost", "prices").stdout
