"""``TeamApplier``: a Team's namespace, quota, defaults and network policies, applied to the cluster.

The shared ``TeamReconciler`` only re-runs the queue when a Team changes (the embedded mode has no
namespaces to make); on Kubernetes the operator additionally calls ``apply`` with the Team, which writes
what ``build_team`` builds. Create-or-patch, so it is idempotent and repairs drift. The Namespace is
never deleted (see ``builders/team.py``); the other objects carry an owner reference to the Team, so
deleting the Team garbage-collects them, and ``apply`` deletes a ResourceQuota that no longer has a
ceiling to enforce.
"""

from __future__ import annotations

from kubernetes import client
from pilothouse.api.team import Team
from pilothouse.runtime.kubernetes.builders.config import KubernetesConfig
from pilothouse.runtime.kubernetes.builders.team import QUOTA_NAME, build_team
from pilothouse.runtime.kubernetes.rest import NativeApi


class TeamApplier:
    def __init__(self, api_client: client.ApiClient, config: KubernetesConfig | None = None) -> None:
        self.config = config or KubernetesConfig()
        self.api = NativeApi(api_client)

    def apply(self, team: Team) -> None:
        objects = build_team(team, self.config)
        for obj in objects:
            self.api.create_or_patch(obj)
        if not any(o["kind"] == "ResourceQuota" for o in objects):
            self.api.delete("ResourceQuota", team.metadata.name, QUOTA_NAME)
