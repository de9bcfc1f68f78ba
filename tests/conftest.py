"""Fixtures shared by the suites: a real iris model file and real control planes, always cleaned up."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import joblib
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from support import ControlPlane, kill_tree_of_data_dir


@pytest.fixture(scope="session")
def iris_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "iris.joblib"
    features, labels = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=1000).fit(features, labels), path)
    return path


@pytest.fixture
def control_plane_factory(tmp_path: Path) -> Iterator[Callable[..., ControlPlane]]:
    planes: list[ControlPlane] = []

    def make(
        data_dir: Path | None = None, extra_args: list[str] | None = None, start: bool = True
    ) -> ControlPlane:
        plane = ControlPlane(data_dir or tmp_path / "data", extra_args=extra_args or [])
        planes.append(plane)
        return plane.start() if start else plane

    yield make
    for plane in planes:
        if plane.proc is not None:
            plane.stop()
    kill_tree_of_data_dir(tmp_path)


@pytest.fixture
def control_plane(control_plane_factory: Callable[..., ControlPlane]) -> ControlPlane:
    return control_plane_factory()
