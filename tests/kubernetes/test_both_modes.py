"""The same manifests and the same CLI, in both modes: ``pilothouse up`` and a cluster with the operator.

One side is a real ``pilothouse up --accelerators nvidia.com/gpu=4`` (``support.ControlPlane``), the other
the API emulator with our CRDs, one Node with 4 GPUs and the operator in-process; the CLI talks to the
first with ``$PILOTHOUSE_SERVER`` and to the second with ``--kubeconfig``. Both get exactly the same
commands and files, and the test compares what each says and ends in:

- ``examples/jobs/teams.yaml`` + ``examples/jobs/nlp-job.yaml`` (a 2-worker command Job): the same apply
  output; the Job admitted by the same queue (embedded: it runs and succeeds; cluster: its batch Job is
  unsuspended, then marked succeeded as a Job controller would); team nlp's status while the Job runs
  is one the embedded team also had, and all Team statuses agree at the end.
- Endpoints, where the modes differ on purpose, as a server-side dry run each: an image model and an
  ``s3://`` uri are admitted by the cluster and rejected locally, a local model file the other way round;
  each rejection names the field. An image Job likewise.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from emulator import KubernetesApiEmulator
from operator_harness import EXAMPLES, RunningOperator, wait_for
from test_operator import get_cr, gpu_nodes

from kubernetes import client as k8s
from pilothouse.api.job import Job
from pilothouse.api.registry import resolve_kind
from pilothouse.client import PilothouseClient
from support import ControlPlane

JOB, TEAM = resolve_kind("job"), resolve_kind("team")
TEAMS = EXAMPLES / "jobs" / "teams.yaml"
BERT = EXAMPLES / "jobs" / "nlp-job.yaml"
IMAGE_ENDPOINT = """\
apiVersion: pilothouse.dev/v1alpha1
kind: ModelEndpoint
metadata: {name: llm, namespace: vision}
spec:
  model: registry.example.com/team/llm:1.2
"""
LOCAL_ENDPOINT = """\
apiVersion: pilothouse.dev/v1alpha1
kind: ModelEndpoint
metadata: {name: iris-local, namespace: vision}
spec:
  model: {uri: ./model.joblib, format: sklearn}
"""

Cli = Callable[..., subprocess.Popen[str]]


@pytest.fixture
def embedded(control_plane_factory: Callable[..., ControlPlane]) -> ControlPlane:
    return control_plane_factory(extra_args=["--accelerators", "nvidia.com/gpu=4"])


@pytest.fixture
def operator(cluster: KubernetesApiEmulator, api_client: k8s.ApiClient) -> Iterator[RunningOperator]:
    gpu_nodes(cluster, 1, 4)
    with RunningOperator(api_client, resync_seconds=5.0) as running:
        yield running


def cli_for(*global_options: str, env: dict[str, str] | None = None) -> Cli:
    def start(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "pilothouse.cli", *global_options, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    return start


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    stdout, stderr = proc.communicate(timeout=60)
    return proc.returncode, stdout, stderr


def team_status(doc: dict[str, Any]) -> dict[str, Any]:
    """What must agree: usage, job counts and conditions (without their timestamps)."""
    status = doc.get("status") or {}
    return {
        "resources": status.get("resources"),
        "runningJobs": status.get("runningJobs", 0),
        "pendingJobs": status.get("pendingJobs", 0),
        "conditions": sorted(
            (c["type"], c["status"], c.get("reason", "")) for c in status.get("conditions") or []
        ),
    }


def test_same_manifests_same_cli_both_modes(
    embedded: ControlPlane, cluster: KubernetesApiEmulator, operator: RunningOperator, tmp_path: Path
) -> None:
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    local = cli_for(env=embedded.env)
    on_cluster = cli_for("--kubeconfig", str(kubeconfig), env=dict(os.environ))
    (tmp_path / "image.yaml").write_text(IMAGE_ENDPOINT)
    (tmp_path / "local.yaml").write_text(LOCAL_ENDPOINT)
    (tmp_path / "model.joblib").write_bytes(b"admission only checks that the file exists")

    # Teams and a command Job: the same words from both.
    procs = [start("apply", "-f", str(TEAMS), "-f", str(BERT)) for start in (local, on_cluster)]
    applied_locally = finish(procs[0])  # the cluster's apply goes on while the embedded job is watched

    # The Job is admitted in both: embedded it runs and its 3 one-second epochs finish; on the cluster
    # the operator unsuspends its batch Job, which is then marked succeeded as a Job controller would.
    # While it runs, team nlp's status (usage, fair share, counts) is the same in both.
    with PilothouseClient(embedded.url) as client:

        def embedded_job() -> Job:
            job = client.get(JOB, "nlp", "bert")
            assert isinstance(job, Job)
            return job

        def embedded_teams() -> dict[str, dict[str, Any]]:
            return {t.metadata.name: team_status(t.model_dump(mode="json")) for t in client.list(TEAM)}

        def cluster_teams() -> dict[str, dict[str, Any]]:
            return {name: team_status(get_cr(cluster, "teams", name)) for name in ("vision", "nlp")}

        seen_running: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while embedded_job().status.phase != "Succeeded" and time.monotonic() < deadline:
            nlp = embedded_teams()["nlp"]
            if nlp["runningJobs"] == 1 and nlp not in seen_running:
                seen_running.append(nlp)
            time.sleep(0.05)
        job = embedded_job()
        assert job.status.phase == "Succeeded" and job.status.attempts == 1, job.status
        assert seen_running, "never saw team nlp with its job running"
        applied = [applied_locally, finish(procs[1])]
        assert applied[0] == applied[1], applied
        assert applied[0][1].splitlines() == [
            "team.pilothouse.dev/vision created",
            "team.pilothouse.dev/nlp created",
            "job.pilothouse.dev/bert created",
        ]

        def unsuspended() -> dict[str, Any] | None:
            batch = cluster.get("batch/v1", "jobs", "bert", "nlp")
            return batch if batch["spec"]["suspend"] is False else None

        batch = wait_for(unsuspended, timeout=30, what="the batch Job unsuspended")
        assert "workingDir" not in batch["spec"]["template"]["spec"]["containers"][0]  # local dir dropped
        wait_for(
            lambda: get_cr(cluster, "jobs", "bert", "nlp")["status"]["phase"] == "Running", what="Running"
        )

        def nlp_running() -> dict[str, Any] | None:
            nlp = cluster_teams()["nlp"]
            return nlp if nlp["runningJobs"] == 1 else None

        running = wait_for(nlp_running, what="team nlp with its job running")
        assert running in seen_running, (running, seen_running)
        assert running["resources"]["nvidia.com/gpu"]["used"] == "2"

        cluster.mark_job_succeeded("nlp", "bert")
        wait_for(
            lambda: get_cr(cluster, "jobs", "bert", "nlp")["status"]["phase"] == "Succeeded",
            what="cluster Succeeded",
        )
        try:
            wait_for(lambda: embedded_teams() == cluster_teams(), timeout=20, what="the same Team statuses")
        except AssertionError:
            assert embedded_teams() == cluster_teams()

    # Admission differs where the runtimes differ, and every rejection names the field.
    cases = {
        "image endpoint": (tmp_path / "image.yaml", "spec.model.image", None),
        "s3 endpoint": (EXAMPLES / "kubernetes" / "iris-endpoint.yaml", "spec.model.uri", None),
        "image job": (EXAMPLES / "kubernetes" / "train-job.yaml", "spec.image", None),
        "local endpoint": (tmp_path / "local.yaml", None, "spec.model.uri"),
    }
    dry_runs = {
        (case, mode): start("apply", "--dry-run", "-f", str(path))
        for case, (path, *_) in cases.items()
        for mode, start in (("embedded", local), ("cluster", on_cluster))
    }
    for (case, mode), proc in dry_runs.items():
        code, stdout, stderr = finish(proc)
        rejected_field = cases[case][1] if mode == "embedded" else cases[case][2]
        if rejected_field is None:
            assert code == 0 and "valid (dry run)" in stdout, (case, mode, stderr)
        else:
            assert code == 1, (case, mode, stdout)
            assert stderr.startswith(f"error: {rejected_field}: "), (case, mode, stderr)
