"""A small stand-in for a training job: trains in epochs, checkpoints, and stops cleanly on SIGTERM.

It prints what the platform gave it (rank, world size, CUDA_VISIBLE_DEVICES) so the logs show the GPU
pinning, and it resumes from its checkpoint when it is restarted after a preemption — the behaviour a
preemptible training job needs.

Usage: python train.py [--epochs N] [--epoch-seconds S] [--checkpoint PATH] [--fail-at EPOCH]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--epoch-seconds", type=float, default=1.0)
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--fail-at", type=int, default=None, help="exit 3 at this epoch (to show retries)")
    args = parser.parse_args()

    stop = {"requested": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(requested=True))
    rank, world = os.environ.get("RANK", "0"), os.environ.get("WORLD_SIZE", "1")
    devices = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    print(
        f"worker {rank}/{world} on CUDA_VISIBLE_DEVICES={devices or '<none>'} pid={os.getpid()}", flush=True
    )

    start = 0
    if args.checkpoint and args.checkpoint.exists():
        start = json.loads(args.checkpoint.read_text())["epoch"]
        print(f"resuming from checkpoint at epoch {start}", flush=True)
    features, labels = load_digits(return_X_y=True)
    model = SGDClassifier(random_state=int(rank))
    classes = np.unique(labels)
    for epoch in range(start, args.epochs):
        if args.fail_at is not None and epoch == args.fail_at:
            print(f"epoch {epoch}: simulated failure", flush=True)
            return 3
        deadline = time.monotonic() + args.epoch_seconds
        while time.monotonic() < deadline and not stop["requested"]:
            model.partial_fit(features, labels, classes=classes)
        accuracy = model.score(features, labels)
        print(f"epoch {epoch + 1}/{args.epochs}: accuracy {accuracy:.3f}", flush=True)
        if args.checkpoint and rank == "0":
            args.checkpoint.write_text(json.dumps({"epoch": epoch + 1}))
        if stop["requested"]:
            print(f"SIGTERM: checkpointed at epoch {epoch + 1}, exiting", flush=True)
            return 143
    print("training finished", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
