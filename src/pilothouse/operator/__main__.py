"""``python -m pilothouse.operator``: the operator process (the install bundle's operator Deployment).

Options mirror ``kopf run`` where they overlap: ``--standalone`` (default) or ``--peering NAME`` with a
``--priority`` (random when not given, so replicas never tie and pause each other), ``--liveness URL``;
``--peering-manifests NAME`` prints kopf's peering CRD and object (``peering.py``) and exits.
Credentials: ``--kubeconfig``/``--context`` (or ``$KUBECONFIG``), else the in-cluster ServiceAccount.
Settings: ``PILOTHOUSE_SYSTEM_NAMESPACE``, ``PILOTHOUSE_GATEWAY_URL``, ``PILOTHOUSE_RESYNC_SECONDS``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets

import yaml

from kubernetes import client
from kubernetes import config as kube_config
from pilothouse.operator.config import OperatorConfig
from pilothouse.operator.peering import peering_crd, peering_object
from pilothouse.operator.run import operate


def api_client(kubeconfig: str | None, context: str | None) -> client.ApiClient:
    if kubeconfig or context or os.environ.get("KUBECONFIG"):
        api: client.ApiClient = kube_config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context
        )
        return api
    configuration = client.Configuration()
    kube_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pilothouse.operator", description=__doc__)
    parser.add_argument("--kubeconfig")
    parser.add_argument("--context")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--standalone", action="store_true", help="no leader election (one replica)")
    mode.add_argument("--peering", metavar="NAME", help="kopf peering name (ClusterKopfPeering)")
    parser.add_argument("--priority", type=int, default=None)
    parser.add_argument("--liveness", metavar="URL", help="e.g. http://0.0.0.0:8080/healthz")
    parser.add_argument("--all-namespaces", "-A", action="store_true", help="accepted; always cluster-wide")
    parser.add_argument("--verbose", "-v", action="store_true")
    parser.add_argument(
        "--peering-manifests",
        metavar="NAME",
        help="print kopf's peering CRD and the peering NAME as YAML (for kubectl apply -f -) and exit",
    )
    args = parser.parse_args(argv)
    if args.peering_manifests:
        print(yaml.safe_dump_all([peering_crd(), peering_object(args.peering_manifests)], sort_keys=False))
        return
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    priority = args.priority if args.priority is not None else secrets.randbelow(1_000_000) + 1
    with api_client(args.kubeconfig, args.context) as api:
        asyncio.run(
            operate(
                api,
                OperatorConfig.from_env(),
                peering_name=args.peering,
                priority=priority,
                liveness_endpoint=args.liveness,
            )
        )


if __name__ == "__main__":
    main()
