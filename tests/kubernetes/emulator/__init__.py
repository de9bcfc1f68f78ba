"""A stateful Kubernetes API emulator for tests: kmock 0.8 plus the fidelity our clients need.

``KubernetesApiEmulator`` serves the Kubernetes API over real HTTP on 127.0.0.1 (ephemeral port) for the
official client, kopf and kubectl. ``server.py`` says what comes from kmock and what from this layer;
each module's docstring says which apiserver behaviour it reproduces and why.
"""

from .errors import KubernetesError
from .faults import FaultRule
from .kubelet import Kubelet
from .server import KubernetesApiEmulator

__all__ = ["FaultRule", "Kubelet", "KubernetesApiEmulator", "KubernetesError"]
