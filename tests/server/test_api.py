"""The control plane API over real HTTP: Kubernetes semantics, Status errors, dry runs, watch, client."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from fakes import FakeRuntime
from pilothouse.api import parse_manifest
from pilothouse.api.errors import FieldProblem
from pilothouse.api.registry import resolve_kind
from pilothouse.client import ApiError, PilothouseClient
from pilothouse.server.app import create_app
from pilothouse.server.services import ControlPlaneServices
from pilothouse.store.sql import SqlStore
from support import free_port, wait_for

BASE = "/apis/pilothouse.dev/v1alpha1/namespaces/default/modelendpoints"
ME = resolve_kind("me")


def doc(name: str = "iris", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pilothouse.dev/v1alpha1",
        "kind": "ModelEndpoint",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"model": {"uri": "/m/iris.joblib"}, **spec},
    }


class Api:
    def __init__(self, tmp_path: Path) -> None:
        self.store = SqlStore(tmp_path / "api.db")
        self.runtime = FakeRuntime()
        services = ControlPlaneServices(self.store, self.runtime, "http://127.0.0.1:1", "test")
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(create_app(services), port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def start(self) -> None:
        self.thread.start()
        wait_for(lambda: self.server.started, what="uvicorn started")

    def stop(self) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join(10)
        self.store.close()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    server = Api(tmp_path)
    server.start()
    yield server
    server.stop()


def test_create_get_list_and_server_set_metadata(api: Api) -> None:
    created = api.http.post(BASE, json=doc())
    assert created.status_code == 201
    meta = created.json()["metadata"]
    assert meta["uid"] and meta["resourceVersion"] and meta["generation"] == 1 and meta["creationTimestamp"]
    assert api.http.get(f"{BASE}/iris").json()["metadata"]["uid"] == meta["uid"]
    api.http.post(BASE, json=doc("wine"))
    listed = api.http.get(BASE).json()
    assert listed["kind"] == "ModelEndpointList"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["iris", "wine"]
    selected = api.http.get(BASE, params={"labelSelector": "app=wine"}).json()["items"]
    assert [i["metadata"]["name"] for i in selected] == ["wine"]
    every = api.http.get("/apis/pilothouse.dev/v1alpha1/modelendpoints").json()["items"]
    assert len(every) == 2


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        (doc(replicas=1), "spec.replicas", "unknown field"),
        (doc(autoscaling={"minReplicas": 3, "maxReplicas": 1}), "spec.autoscaling", "must be <="),
        ({**doc(), "metadata": {"name": "Bad_Name"}}, "metadata.name", "invalid name"),
        (
            {**doc(), "metadata": {"name": "iris", "namespace": "other"}},
            "metadata.namespace",
            "does not match",
        ),
        ({**doc(), "kind": "Pod"}, "kind", "unknown kind"),
        (doc(model="registry.example/x:1"), "spec.model.image", "Kubernetes"),
    ],
)
def test_invalid_bodies_are_422_status_with_causes(
    api: Api, body: dict[str, Any], field: str, fragment: str
) -> None:
    response = api.http.post(BASE, json=body)
    assert response.status_code == 422
    status = response.json()
    assert status["kind"] == "Status" and status["reason"] == "Invalid"
    causes = {c["field"]: c["message"] for c in status["details"]["causes"]}
    assert field in causes and fragment in causes[field]
    assert api.http.get(BASE).json()["items"] == []


def test_runtime_admission_problems_reject_the_object(api: Api) -> None:
    api.runtime.admission_problems = [FieldProblem("spec.model.uri", "file not found: /m/iris.joblib")]
    response = api.http.post(BASE, json=doc())
    assert response.status_code == 422
    assert "file not found: /m/iris.joblib" in response.text


def test_conflicts_not_found_and_already_exists(api: Api) -> None:
    first = api.http.post(BASE, json=doc()).json()
    again = api.http.post(BASE, json=doc())
    assert (again.status_code, again.json()["reason"]) == (409, "AlreadyExists")

    update = {**first, "spec": {**first["spec"], "autoscaling": {"minReplicas": 2, "maxReplicas": 2}}}
    ok = api.http.put(f"{BASE}/iris", json=update)
    assert ok.status_code == 200 and ok.json()["metadata"]["generation"] == 2
    stale = api.http.put(f"{BASE}/iris", json=update)  # still carries the first resourceVersion
    assert (stale.status_code, stale.json()["reason"]) == (409, "Conflict")

    missing = api.http.get(f"{BASE}/ghost")
    assert (missing.status_code, missing.json()["reason"]) == (404, "NotFound")
    assert api.http.get("/apis/pilothouse.dev/v1alpha1/namespaces/default/pods").status_code == 404


def test_dry_run_stores_nothing(api: Api) -> None:
    response = api.http.post(BASE, json=doc(), params={"dryRun": "All"})
    assert response.status_code == 201
    assert api.http.get(BASE).json()["items"] == []
    assert api.http.post(BASE, json=doc(), params={"dryRun": "Some"}).status_code == 422


def test_status_subresource_changes_only_status(api: Api) -> None:
    created = api.http.post(BASE, json=doc()).json()
    status_update = {"metadata": created["metadata"], "status": {"url": "http://x", "replicas": 3}}
    updated = api.http.put(f"{BASE}/iris/status", json=status_update).json()
    assert updated["status"]["url"] == "http://x"
    assert updated["metadata"]["generation"] == 1
    assert updated["spec"] == created["spec"]


def test_watch_streams_changes_after_a_resource_version(api: Api) -> None:
    created = api.http.post(BASE, json=doc()).json()
    since = created["metadata"]["resourceVersion"]
    api.http.delete(f"{BASE}/iris")
    params = {"watch": "true", "resourceVersion": since, "timeoutSeconds": "1"}
    with api.http.stream("GET", BASE, params=params) as stream:
        events = [json.loads(line) for line in stream.iter_lines() if line]
    assert [e["type"] for e in events] == ["DELETED"]
    assert events[0]["object"]["metadata"]["name"] == "iris"


def test_openapi_health_version_and_events(api: Api) -> None:
    spec = api.http.get("/openapi.json").json()
    assert "/apis/pilothouse.dev/v1alpha1/namespaces/{namespace}/{plural}" in spec["paths"]
    assert api.http.get("/healthz").text == "ok"
    assert api.http.get("/readyz").status_code == 200
    assert api.http.get("/version").json()["runtime"] == "fake"
    obj = api.store.get(
        "ModelEndpoint", "default", api.http.post(BASE, json=doc()).json()["metadata"]["name"]
    )
    from pilothouse.api.event import ObjectReference

    api.store.record_event(
        ObjectReference(kind="ModelEndpoint", namespace="default", name="iris", uid=obj.metadata.uid),
        "Normal",
        "Tested",
        "hello",
    )
    events = api.http.get(
        "/apis/pilothouse.dev/v1alpha1/namespaces/default/events",
        params={"kind": "ModelEndpoint", "name": "iris"},
    ).json()["items"]
    assert [(e["reason"], e["message"]) for e in events] == [("Tested", "hello")]


def test_client_apply_create_configure_unchanged_and_errors(api: Api) -> None:
    with PilothouseClient(api.url) as client:
        obj = parse_manifest(doc())
        assert client.apply(obj).action == "created"
        assert client.apply(obj).action == "unchanged"
        changed = parse_manifest(doc(autoscaling={"minReplicas": 2, "maxReplicas": 4}))
        result = client.apply(changed)
        assert result.action == "configured"
        assert result.object.metadata.generation == 2
        labelled_doc = doc(autoscaling={"minReplicas": 2, "maxReplicas": 4})
        labelled_doc["metadata"]["labels"]["tier"] = "gold"
        labelled = parse_manifest(labelled_doc)
        assert client.apply(labelled).object.metadata.generation == 2, "labels do not bump generation"
        assert [o.metadata.name for o in client.list(ME, "default", "tier=gold")] == ["iris"]
        with pytest.raises(ApiError) as info:
            client.get(ME, "default", "ghost")
        assert info.value.reason == "NotFound"
        gone = client.delete(ME, "default", "iris")
        assert gone.metadata.name == "iris"
        assert client.replicas_of(gone.metadata.uid or "") == []


def test_client_reports_an_object_it_cannot_read_instead_of_a_traceback() -> None:
    # An object stored before a rule the client now checks (an empty Job command), or sent by a server of
    # another version: the client names the object and the field, as an ApiError the CLI prints in one line.
    job = {
        "apiVersion": "pilothouse.dev/v1alpha1",
        "kind": "Job",
        "metadata": {"name": "old", "namespace": "nlp"},
        "spec": {"command": []},
    }
    answers = {"/apis/pilothouse.dev/v1alpha1/namespaces/nlp/jobs/old": job}
    answers["/apis/pilothouse.dev/v1alpha1/namespaces/nlp/jobs/alien"] = {**job, "kind": "Gizmo"}
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=answers[request.url.path]))
    with PilothouseClient("http://control-plane", transport=transport) as client:
        with pytest.raises(ApiError) as info:
            client.get(resolve_kind("job"), "nlp", "old")
        assert info.value.reason == "UnreadableResponse"
        assert (
            "Job 'old'" in info.value.message and "spec: Value error, command must be" in info.value.message
        )
        with pytest.raises(ApiError, match="Gizmo 'old', which this client cannot read \\(unknown kind\\)"):
            client.get(resolve_kind("job"), "nlp", "alien")
