"""The simulator end to end on traces small enough to check by hand, and the ``sim`` command's errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from pilothouse.cli import sim as sim_cli
from pilothouse.scheduling.sim_metrics import measure
from pilothouse.scheduling.sim_run import simulate
from pilothouse.scheduling.sim_setup import proportional_quotas
from pilothouse.scheduling.sim_trace import load

HEADER = "timestamp,duration,num_gpus,gpu_time,cluster\n"


def write_trace(path: Path, rows: list[tuple[str, float, int, str]]) -> Path:
    path.write_text(HEADER + "".join(f"{ts},{d},{g},{d * g},{team}\n" for ts, d, g, team in rows))
    return path


@pytest.fixture
def three_jobs(tmp_path: Path) -> Path:
    # One GPU: A (100 s) starts at 0; B (10 s) and C (1 s) queue behind it.
    return write_trace(
        tmp_path / "t.csv",
        [
            ("2017-10-01 00:00:00", 100.0, 1, "x"),
            ("2017-10-01 00:00:01", 10.0, 1, "x"),
            ("2017-10-01 00:00:02", 1.0, 1, "y"),
        ],
    )


@pytest.mark.parametrize(
    ("policy", "avg_jct"),
    [
        ("fifo", (100 + 109 + 109) / 3),  # A 0-100, B 100-110, C 110-111
        ("sjf", (100 + 110 + 99) / 3),  # A 0-100, C 100-101, B 101-111
    ],
)
def test_three_jobs_by_hand(three_jobs: Path, policy: str, avg_jct: float) -> None:
    m = measure(simulate(load(three_jobs).jobs, 1, policy))
    assert m.avg_jct_h * 3600 == pytest.approx(avg_jct)
    assert m.makespan_h * 3600 == pytest.approx(111)
    assert m.utilization == pytest.approx(1.0)
    assert m.jobs == 3 and m.dropped == 0


def test_busy_while_waiting_counts_only_time_when_a_job_waits(tmp_path: Path) -> None:
    # Two GPUs: A (1 GPU, 100 s) at 0, B (2 GPUs, 10 s) at 1 waits until A ends: one of two GPUs held
    # while B waits (0.5); before B arrives and after it starts nothing waits, so that time does not count.
    trace = write_trace(
        tmp_path / "t.csv", [("2017-10-01 00:00:00", 100.0, 1, "x"), ("2017-10-01 00:00:01", 10.0, 2, "x")]
    )
    m = measure(simulate(load(trace).jobs, 2, "fifo"))
    assert m.busy_while_waiting == pytest.approx(0.5)
    assert m.utilization == pytest.approx((100 + 20) / (2 * 110))
    assert m.busy_while_arriving == pytest.approx(0.5)  # arrivals at 0 and 1: one of two GPUs held


def test_busy_while_arriving_ends_at_the_last_submission_and_counts_idle_gaps(tmp_path: Path) -> None:
    # One GPU: A (10 s) at 0, B (50 s) at 100. Between the arrivals the GPU is held 10 of 100 s; B's run
    # after the last arrival is the drain, outside the window. Over the makespan: 60 of 150 s.
    trace = write_trace(
        tmp_path / "t.csv", [("2017-10-01 00:00:00", 10.0, 1, "x"), ("2017-10-01 00:01:40", 50.0, 1, "y")]
    )
    m = measure(simulate(load(trace).jobs, 1, "fifo"))
    assert m.busy_while_arriving == pytest.approx(0.1)
    assert m.utilization == pytest.approx(60 / 150)


def test_busy_while_arriving_is_utilization_when_every_job_arrives_at_once(tmp_path: Path) -> None:
    trace = write_trace(
        tmp_path / "t.csv", [("2017-10-01 00:00:00", 10.0, 1, "x"), ("2017-10-01 00:00:00", 30.0, 2, "y")]
    )
    m = measure(simulate(load(trace).jobs, 2, "fifo"))
    assert m.utilization == pytest.approx((10 + 60) / (2 * 40))
    assert m.busy_while_arriving == m.utilization


def test_one_job_credit_separates_gang_granularity_from_unfairness(tmp_path: Path) -> None:
    # Four GPUs, shares 2 and 2. x's 4-GPU gang runs for 2 h; y's 4-GPU gang waits: y holds 0 of its
    # share of 2 (below target), but reclaim cannot take x's one job without leaving x at 0. Credited
    # with its smallest waiting job (4 GPUs), y is not below: the shortfall is granularity.
    trace = write_trace(
        tmp_path / "t.csv",
        [("2017-10-01 00:00:00", 7200.0, 4, "x"), ("2017-10-01 00:00:01", 7200.0, 4, "y")],
    )
    m = measure(simulate(load(trace).jobs, 4, "fair"))
    assert m.preemptions == 0
    assert m.team_hours_below > 0
    assert m.team_hours_below_one_job == 0


def test_jobs_larger_than_cluster_are_dropped_and_counted(tmp_path: Path) -> None:
    trace = write_trace(
        tmp_path / "t.csv", [("2017-10-01 00:00:00", 10.0, 1, "x"), ("2017-10-01 00:00:05", 10.0, 8, "x")]
    )
    for policy in ("fair", "fifo", "fifo-backfill", "sjf", "las"):
        m = measure(simulate(load(trace).jobs, 4, policy))
        assert (m.jobs, m.dropped) == (1, 1)


def test_quotas_split_by_gpu_time_and_sum_to_cluster(three_jobs: Path) -> None:
    teams = proportional_quotas(load(three_jobs).jobs, 10)
    assert {name: t.quotas["nvidia.com/gpu"].nominal for name, t in teams.items()} == {"x": 10, "y": 0}
    assert all(t.cohort == "trace" for t in teams.values())


def test_fair_reclaims_on_a_small_trace(tmp_path: Path) -> None:
    rows = [("2017-10-01 00:00:00", 1000.0, 1, "big") for _ in range(4)]
    rows += [("2017-10-01 00:00:10", 100.0, 1, "small"), ("2017-10-01 00:00:11", 1.0, 3, "small")]
    run = simulate(load(write_trace(tmp_path / "t.csv", rows)).jobs, 4, "fair")
    assert all(o.finish > 0 for o in run.outcomes)


def invoke(*args: str) -> tuple[int, str]:
    app = typer.Typer()
    sim_cli.register(app)

    @app.callback()
    def _root() -> None: ...

    result = CliRunner().invoke(app, ["sim", *args])
    return result.exit_code, result.output


def test_cli_json_is_one_object(three_jobs: Path) -> None:
    code, output = invoke("--trace", str(three_jobs), "--gpus", "1", "--policy", "sjf", "-o", "json")
    assert code == 0
    data = json.loads(output)
    assert data["policy"] == "sjf" and data["jobs"] == 3


def test_cli_table(three_jobs: Path) -> None:
    code, output = invoke("--trace", str(three_jobs), "--gpus", "2")
    assert code == 0 and "average JCT" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trace", "missing.csv", "--gpus", "4"], "--trace"),
        (["--gpus", "0"], "--gpus"),
        (["--gpus", "4", "--policy", "random"], "--policy"),
        (["--gpus", "4", "--limit", "0"], "--limit"),
        (["--gpus", "4", "--bad-columns"], "missing column"),
    ],
)
def test_cli_bad_input(tmp_path: Path, three_jobs: Path, args: list[str], message: str) -> None:
    if "--bad-columns" in args:
        bad = tmp_path / "bad.csv"
        bad.write_text("when,how_long\n1,2\n")
        args = ["--trace", str(bad), "--gpus", "4"]
    elif "--trace" not in args:
        args = ["--trace", str(three_jobs), *args]
    code, output = invoke(*args)
    assert code == 1
    assert message in output
