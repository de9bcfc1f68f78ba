"""Compacting old usage samples, so metering storage grows with time in hours, not in sampling periods.

A replica sampled every 10 s leaves 360 samples an hour, for as long as it runs. Cost only ever reads
usage as a *step function* per metric (a sample's value holds until the next sample of that metric,
see ``pilothouse.cost.metering``), integrated over a window. So within one hour, per interval and per
metric, the points ``t1 .. tk`` (k > 3) are replaced by three that keep that function's integral:

- ``t1`` with its own value: what holds before the bucket's second point is unchanged (including the
  "before the first point, the first value holds" rule at an interval's start);
- ``t2`` with the mean of the step function over ``[t2, tk)``: the integral over that stretch is kept;
- ``tk`` with its own value: what holds from there on, into the next hour, is unchanged.

Hence the integral over any span whose ends fall outside ``(t2, tk)`` of every compacted hour is what
it was before, to Decimal precision (28 significant digits); a window that starts or ends inside such a
stretch sees the hour's mean instead of the readings. Compacting is idempotent: a compacted hour has at
most three points per metric and is left alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from itertools import pairwise

from pilothouse.store.metering import SampleRecord

HOUR = timedelta(hours=1)
KEPT_PER_BUCKET = 3


def bucket_start(at: datetime, bucket: timedelta = HOUR) -> datetime:
    """The start of the bucket ``at`` falls in (buckets are aligned to the epoch, in ``at``'s zone)."""
    step = int(bucket.total_seconds())
    seconds = int(at.timestamp())
    return datetime.fromtimestamp(seconds - seconds % step, at.tzinfo)


def compact_samples(samples: Sequence[SampleRecord], bucket: timedelta = HOUR) -> list[SampleRecord]:
    """The samples of one interval, compacted per bucket and metric (see the module docstring).

    ``samples`` must all belong to one interval; the result is sorted by time. The caller chooses
    which buckets to pass (whole buckets only: a bucket cut in two compacts as two).
    """
    if not samples:
        return []
    interval_id = samples[0].interval_id
    if any(s.interval_id != interval_id for s in samples):
        raise ValueError("compact_samples takes the samples of one interval")
    series: dict[tuple[datetime, str], list[tuple[datetime, Decimal]]] = defaultdict(list)
    for sample in sorted(samples, key=lambda s: s.at):
        for metric, value in sample.usage.items():
            series[(bucket_start(sample.at, bucket), metric)].append((sample.at, Decimal(value)))
    rows: dict[datetime, dict[str, str]] = defaultdict(dict)
    for (_, metric), points in series.items():
        for at, value in _compact_points(points):
            rows[at][metric] = value
    return [SampleRecord(interval_id, at, usage) for at, usage in sorted(rows.items())]


def _compact_points(points: list[tuple[datetime, Decimal]]) -> list[tuple[datetime, str]]:
    if len(points) <= KEPT_PER_BUCKET:
        return [(at, str(value)) for at, value in points]
    (first_at, first), (second_at, _), (last_at, last) = points[0], points[1], points[-1]
    if last_at <= second_at:  # readings with one timestamp: nothing to average over
        return [(at, str(value)) for at, value in points]
    with localcontext() as ctx:
        ctx.prec = 28
        area = sum(
            (
                value * Decimal(str((after - at).total_seconds()))
                for (at, value), (after, _) in pairwise(points[1:])
            ),
            Decimal(0),
        )
        mean = area / Decimal(str((last_at - second_at).total_seconds()))
    return [(first_at, str(first)), (second_at, str(mean.normalize())), (last_at, str(last))]
