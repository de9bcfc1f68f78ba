"""``pilothouse render`` and ``pilothouse install kubernetes``: offline output, clear errors, exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
import yaml
from typer.testing import CliRunner

from pilothouse.cli import install, render
from pilothouse.runtime.kubernetes.builders import KubernetesConfig, install_objects
from pilothouse.runtime.kubernetes.bundle import install_files

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples" / "kubernetes"


def app() -> typer.Typer:
    cli = typer.Typer()
    render.register(cli)
    install.register(cli)
    return cli


def run(*args: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(app(), list(args), input=stdin)


def test_render_examples(k8s_valid: Any) -> None:
    result = run("render", "-f", str(EXAMPLES), "--kubernetes")
    assert result.exit_code == 0, result.output
    objects = [d for d in yaml.safe_load_all(result.stdout) if d]
    k8s_valid(objects)
    kinds = {o["kind"] for o in objects}
    assert kinds == {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "Job",
        "Namespace",
        "ResourceQuota",
        "LimitRange",
        "NetworkPolicy",
    }
    assert "# Source: " in result.stdout and all("ownerReferences" not in o["metadata"] for o in objects)
    llm = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "llm-r1")
    assert llm["spec"]["replicas"] == 2
    assert llm["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {
        "memory": "32Gi",
        "nvidia.com/gpu": "2",
    }


def test_render_a_local_model_file_fails_clearly() -> None:
    result = run("render", "-f", str(REPO / "examples" / "iris" / "endpoint.yaml"))
    assert result.exit_code == 1
    assert "examples/iris/endpoint.yaml: spec.model.uri:" in result.stderr
    assert "is a local file" in result.stderr and "s3://" in result.stderr


def test_render_a_command_job_drops_the_laptop_working_dir(tmp_path: Path) -> None:
    manifest = tmp_path / "job.yaml"
    manifest.write_text(
        "apiVersion: pilothouse.dev/v1alpha1\nkind: Job\nmetadata: {name: train, namespace: vision}\n"
        "spec: {command: [python, train.py]}\n",
        encoding="utf-8",
    )
    result = run("render", "-f", str(manifest))
    assert result.exit_code == 0, result.output
    (batch,) = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert "workingDir" not in batch["spec"]["template"]["spec"]["containers"][0]
    assert "warning:" in result.stderr and "spec.image" in result.stderr


def test_render_bad_input_names_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: pilothouse.dev/v1alpha1\nkind: ModelEndpoint\nmetadata: {name: x}\n"
        "spec: {model: x/y:1, autoscaling: {minReplicas: 3, maxReplicas: 1}}\n",
        encoding="utf-8",
    )
    result = run("render", "-f", str(bad))
    assert result.exit_code == 1
    assert f"{bad}: spec.autoscaling" in result.stderr and "minReplicas" in result.stderr
    assert run("render", "-f", str(tmp_path / "missing.yaml")).exit_code == 1


def test_render_reads_stdin() -> None:
    doc = "apiVersion: pilothouse.dev/v1alpha1\nkind: Team\nmetadata: {name: nlp}\n"
    result = run("render", "-f", "-", stdin=doc)
    assert result.exit_code == 0, result.output
    assert "kind: Namespace" in result.stdout


def test_install_prints_the_bundle() -> None:
    result = run("install", "kubernetes", "--dry-run")
    assert result.exit_code == 0, result.output
    assert [d for d in yaml.safe_load_all(result.stdout) if d] == install_objects(KubernetesConfig())
    as_json = run("install", "kubernetes", "-o", "json")
    assert as_json.exit_code == 0
    listing = json.loads(as_json.stdout)
    assert listing["kind"] == "List" and listing["items"] == install_objects(KubernetesConfig())


def test_install_output_dir_writes_the_deploy_tree(tmp_path: Path) -> None:
    result = run("install", "kubernetes", "--output-dir", str(tmp_path / "k8s"))
    assert result.exit_code == 0, result.output
    for relative, text in install_files().items():
        assert (tmp_path / "k8s" / relative).read_text(encoding="utf-8") == text


def test_install_other_namespace() -> None:
    result = run("install", "kubernetes", "-n", "platform")
    objects = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert {o["metadata"].get("namespace") for o in objects} == {None, "platform"}
