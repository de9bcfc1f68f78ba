"""Reading a GPU cluster trace (Philly's preprocessed CSV) into jobs the simulator can replay.

Columns: ``timestamp`` (submission, ``YYYY-MM-DD HH:MM:SS``), ``duration`` (seconds it ran: the oracle
truth), ``num_gpus``, ``gpu_time`` (unused, it is ``duration x num_gpus``), ``cluster`` (the virtual
cluster, i.e. the team). The trace has no CPU or memory, so jobs ask for GPUs only; a job of N GPUs is one
gang of N one-GPU workers (all or nothing). Submission times become seconds since the first submission.
Jobs larger than the simulated cluster can never start: ``load`` keeps them, ``Trace.fitting`` drops them
and the simulator reports how many it dropped.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REQUIRED_COLUMNS = ("timestamp", "duration", "num_gpus", "cluster")


class TraceError(ValueError):
    """The trace file cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class TraceJob:
    id: str
    team: str
    submit: float
    duration: float
    gpus: int


@dataclass(frozen=True)
class Trace:
    jobs: list[TraceJob]
    """Sorted by submission time, then id."""

    def fitting(self, gpus: int) -> tuple[list[TraceJob], int]:
        kept = [job for job in self.jobs if job.gpus <= gpus]
        return kept, len(self.jobs) - len(kept)

    @property
    def teams(self) -> list[str]:
        return sorted({job.team for job in self.jobs})


def load(path: Path, limit: int | None = None) -> Trace:
    """Read ``path``; ``limit`` keeps the first N jobs by submission time."""
    try:
        handle = path.open(newline="")
    except OSError as exc:
        raise TraceError(f"{path}: cannot read trace ({exc.strerror or exc})") from None
    jobs: list[TraceJob] = []
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise TraceError(
                f"{path}: missing column(s) {', '.join(missing)} (need {', '.join(REQUIRED_COLUMNS)})"
            )
        for line, row in enumerate(reader, start=2):
            try:
                submit = datetime.fromisoformat(row["timestamp"]).replace(tzinfo=UTC).timestamp()
                duration = float(row["duration"])
                gpus = int(float(row["num_gpus"]))
            except (TypeError, ValueError):
                raise TraceError(f"{path}:{line}: bad value in row {row!r}") from None
            if duration < 0 or gpus < 0:
                raise TraceError(f"{path}:{line}: negative duration or num_gpus")
            jobs.append(TraceJob(f"job-{line - 1:06d}", row["cluster"] or "unknown", submit, duration, gpus))
    if not jobs:
        raise TraceError(f"{path}: no jobs in trace")
    jobs.sort(key=lambda job: (job.submit, job.id))
    if limit is not None:
        jobs = jobs[:limit]
    start = jobs[0].submit
    return Trace([TraceJob(j.id, j.team, j.submit - start, j.duration, j.gpus) for j in jobs])
