"""Run the emulator from the command line and point kubectl at it.

PYTHONPATH=tests/kubernetes python -m emulator --kubeconfig /tmp/emulator.kubeconfig [--port 8001]
KUBECONFIG=/tmp/emulator.kubeconfig kubectl get ns
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from emulator import KubernetesApiEmulator


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default: any free one)")
    parser.add_argument("--kubeconfig", type=Path, help="write a kubeconfig for this server here")
    parser.add_argument(
        "--kubelet", action="store_true", help="mark Deployments ready and Jobs done in the background"
    )
    args = parser.parse_args()
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with KubernetesApiEmulator(port=args.port) as emulator:
        if args.kubelet:
            emulator.start_kubelet(jobs=True)
        if args.kubeconfig:
            emulator.write_kubeconfig(args.kubeconfig)
        print(f"Kubernetes API emulator serving on {emulator.url}", flush=True)
        if args.kubeconfig:
            print(f"export KUBECONFIG={args.kubeconfig}", flush=True)
        done.wait()


if __name__ == "__main__":
    main()
