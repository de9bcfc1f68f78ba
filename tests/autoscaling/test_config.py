"""``config_from_spec``: the user-facing ``Autoscaling`` fields resolved the way Knative resolves them."""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse.api.modelendpoint import Autoscaling, ScalingSchedule
from pilothouse.autoscaling import AutoscalerConfig, Schedule, config_from_spec


def test_defaults() -> None:
    cfg = config_from_spec(Autoscaling())
    assert cfg == AutoscalerConfig(
        min_replicas=1,
        max_replicas=1,
        metric="concurrency",
        target=7.0,  # 10 concurrent requests x 70%
        stable_window=60.0,
        panic_window=6.0,
        panic_threshold=2.0,
        max_scale_up_rate=1000.0,
        max_scale_down_rate=2.0,
        scale_to_zero_grace=30.0,
        schedules=(),
    )
    assert cfg == AutoscalerConfig(min_replicas=1, max_replicas=1)  # the dataclass defaults agree


@pytest.mark.parametrize(
    ("fields", "target"),
    [
        ({}, 7.0),
        ({"targetUtilization": 100}, 10.0),
        ({"target": 4}, 2.8),
        ({"containerConcurrency": 8}, 5.6),  # a hard limit is the capacity when no target is given
        ({"containerConcurrency": 8, "target": 20}, 5.6),  # the target never exceeds the hard limit
        ({"containerConcurrency": 8, "target": 4, "targetUtilization": 50}, 2.0),
        ({"metric": "rps"}, 70.0),
        ({"metric": "rps", "target": 50, "targetUtilization": 100}, 50.0),
        ({"metric": "rps", "containerConcurrency": 1}, 70.0),  # the hard limit is about concurrency
        ({"metric": "utilization"}, 70.0),
        ({"metric": "utilization", "targetUtilization": 85, "target": 3}, 85.0),  # target is ignored
        ({"target": 0.001, "targetUtilization": 1}, 0.01),  # Knative's TargetMin
    ],
)
def test_effective_target(fields: dict[str, Any], target: float) -> None:
    assert config_from_spec(Autoscaling(**fields)).target == pytest.approx(target)


def test_every_field_is_carried() -> None:
    spec = Autoscaling(
        minReplicas=0,
        maxReplicas=12,
        metric="rps",
        target=40,
        targetUtilization=80,
        stableWindowSeconds=120,
        panicWindowPercentage=5,
        panicThresholdPercentage=300,
        maxScaleUpRate=4,
        maxScaleDownRate=3,
        scaleToZeroGracePeriodSeconds=45,
        schedules=[
            ScalingSchedule(
                name="office",
                days=["fri", "mon"],
                start="08:00",
                end="20:00",
                timeZone="Europe/Berlin",
                minReplicas=3,
            )
        ],
    )
    assert config_from_spec(spec) == AutoscalerConfig(
        min_replicas=0,
        max_replicas=12,
        metric="rps",
        target=32.0,
        stable_window=120.0,
        panic_window=6.0,
        panic_threshold=3.0,
        max_scale_up_rate=4.0,
        max_scale_down_rate=3.0,
        scale_to_zero_grace=45.0,
        schedules=(
            Schedule(
                name="office",
                days=("mon", "fri"),
                start="08:00",
                end="20:00",
                time_zone="Europe/Berlin",
                min_replicas=3,
            ),
        ),
    )


def test_panic_window_is_at_least_one_second() -> None:
    cfg = config_from_spec(Autoscaling(stableWindowSeconds=6, panicWindowPercentage=1))
    assert cfg.panic_window == 1.0


def test_min_zero_gets_a_max_of_one() -> None:
    cfg = config_from_spec(Autoscaling(minReplicas=0))
    assert (cfg.min_replicas, cfg.max_replicas) == (0, 1)


def test_an_unknown_time_zone_is_rejected_by_the_api_and_by_the_core() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Europe/Atlantis'"):
        ScalingSchedule(start="08:00", end="20:00", timeZone="Europe/Atlantis")
    unchecked = ScalingSchedule.model_construct(
        start="08:00", end="20:00", timeZone="Europe/Atlantis", days=["mon"]
    )
    with pytest.raises(ValueError, match="unknown time zone 'Europe/Atlantis'"):
        config_from_spec(Autoscaling(schedules=[unchecked]))
