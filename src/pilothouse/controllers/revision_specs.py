"""The specs of an endpoint's older revisions still in play, from the store's spec history.

A revision is a replica template introduced by one spec generation (``status.revisions``). While a
rollout runs, replicas of the stable revision keep their own template: the reconciler starts them from
it and metering charges them what it requests. Both ask here, so there is one way from a revision
number to its spec.
"""

from __future__ import annotations

from pilothouse.api.modelendpoint import ModelEndpoint, ModelEndpointSpec
from pilothouse.store.protocol import Store


def older_revision_specs(store: Store, endpoint: ModelEndpoint) -> dict[int, ModelEndpointSpec]:
    """Revision number -> spec, for every revision in ``status.revisions`` other than the latest (whose
    spec is the current one). Reads the history only when there is such a revision."""
    status = endpoint.status
    wanted = {r.generation: r.revision for r in status.revisions if r.revision != status.latestRevision}
    if not wanted or endpoint.metadata.uid is None:
        return {}
    return {
        wanted[past.generation]: ModelEndpointSpec.model_validate(past.spec)
        for past in store.history(endpoint.metadata.uid)
        if past.generation in wanted
    }
