"""``pilothouse describe team``: the budget in words, with the spend and state metering wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from cost_plane import cost_plane
from pilothouse.api.team import Team
from pilothouse.cli.main import app


def team(name: str, budget: dict[str, Any] | None) -> Team:
    spec = {"budget": budget} if budget else {}
    return Team.model_validate(
        {"apiVersion": "pilothouse.dev/v1alpha1", "kind": "Team", "metadata": {"name": name}, "spec": spec}
    )


def test_describe_team_shows_budget_spend_and_state(tmp_path: Path) -> None:
    with cost_plane(tmp_path / "data") as plane:
        lab = plane.store.create(
            team(
                "lab",
                {"monthlyAmount": 400, "thresholds": [0.5, 0.8, 1.1], "actions": ["hold-jobs", "notify"]},
            )
        )
        assert isinstance(lab, Team)
        reason = "team lab has spent $412.50 of its $400.00 monthly budget (103%), past the 80% warning"
        lab.status.spendThisMonth = "412.50"
        lab.status.budgetState = f"warning: {reason}"
        plane.store.update_status(lab)
        plane.store.create(team("free", None))

        result = CliRunner().invoke(app, ["--server", plane.url, "describe", "team", "lab"])
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()

        def line(label: str) -> str:
            return next(item for item in lines if item.startswith(label))

        assert "$400.00 per calendar month" in line("Budget:")
        assert "50%, 80%, 110%" in line("  Thresholds:")
        assert "hold-jobs, notify" in line("  Actions:")
        assert "$412.50 this month (103% of the budget)" in line("Spend:")
        assert line("Budget state:").endswith(f"warning: {reason}")

        free = CliRunner().invoke(app, ["--server", plane.url, "describe", "team", "free"]).stdout
        assert "Budget:" in free and "<none>" in free and "Spend:" in free and "Budget state" not in free
