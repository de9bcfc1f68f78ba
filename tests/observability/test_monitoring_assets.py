"""The PrometheusRule is valid for promtool and its alerts fire when they should; the dashboard parses.

``promtool`` comes from Debian's ``prometheus`` package (``apt-get install -y prometheus``); without it
these tests skip and say so. Which metric names the assets may use is checked against real scrapes in
``test_observability_e2e.py``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (apt-get install -y prometheus) - rules not validated"
)


def rule_groups(tmp_path: Path) -> Path:
    doc = yaml.safe_load((MONITORING / "prometheus-rules.yaml").read_text())
    assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "PrometheusRule"
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": doc["spec"]["groups"]}))
    return path


@needs_promtool
def test_promtool_accepts_the_rule_groups(tmp_path: Path) -> None:
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(rule_groups(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_alerts_fire_on_synthetic_series(tmp_path: Path) -> None:
    assert PROMTOOL is not None
    rule_groups(tmp_path)
    shutil.copy(MONITORING / "tests" / "rules-test.yaml", tmp_path / "rules-test.yaml")
    result = subprocess.run(
        [PROMTOOL, "test", "rules", str(tmp_path / "rules-test.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_is_grafana_json_with_a_query_per_panel() -> None:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    assert dashboard["uid"] and dashboard["title"] == "Pilothouse"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert all(t["expr"].strip() and t["refId"] for t in panel["targets"])
