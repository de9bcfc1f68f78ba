"""The gateway follows a mounted routes ConfigMap: files published, changed, broken, removed."""

from __future__ import annotations

import json
from pathlib import Path

from pilothouse.serving.gateway.routes import RouteTable
from pilothouse.serving.gateway.routes_dir import RoutesDirectory
from pilothouse.serving.gateway.spec import EndpointRoute


def write(directory: Path, key: str, urls: list[str]) -> None:
    (directory / key).write_text(json.dumps(EndpointRoute.single(urls, revision=1).to_json()))


def test_files_become_routes_and_removed_files_are_withdrawn(tmp_path: Path) -> None:
    table = RouteTable()
    follower = RoutesDirectory(tmp_path, table)
    write(tmp_path, "team.iris", ["http://10.0.0.1:8080"])
    (tmp_path / "..data").mkdir()  # the kubelet's bookkeeping entries are skipped
    (tmp_path / "team.broken").write_text("{not json")
    assert follower.sync() == 1
    assert table.upstreams("team", "iris") == ("http://10.0.0.1:8080",)
    assert not table.known("team", "broken"), "a malformed file is ignored, not fatal"
    assert follower.sync() == 0, "nothing changed: nothing republished"

    write(tmp_path, "team.iris", ["http://10.0.0.1:8080", "http://10.0.0.2:8080"])
    assert follower.sync() == 1
    assert len(table.upstreams("team", "iris")) == 2

    (tmp_path / "team.iris").unlink()
    assert follower.sync() == 1
    assert not table.known("team", "iris")


def test_a_missing_directory_means_no_routes(tmp_path: Path) -> None:
    follower = RoutesDirectory(tmp_path / "not-mounted-yet", RouteTable())
    assert follower.sync() == 0
