"""The JSON record directory behind replica and job records: crash leftovers and corrupt files."""

from __future__ import annotations

import json
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest

from pilothouse.runtime.local.record_dir import JsonRecordDir, write_json_atomic


@dataclass
class Note:
    name: str
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Note:
        return cls(**data)


def notes(directory: Path) -> JsonRecordDir[Note]:
    return JsonRecordDir(
        directory, what="note", key=lambda n: n.name, decode=Note.from_json, order=lambda n: n.created_at
    )


def test_records_load_in_order_and_delete(tmp_path: Path) -> None:
    store = notes(tmp_path / "notes")
    store.save(Note("b", 2.0))
    store.save(Note("a", 3.0))
    store.save(Note("c", 1.0))
    assert [n.name for n in store.load_all()] == ["c", "b", "a"]
    store.delete("b")
    store.delete("never-there")
    assert [n.name for n in store.load_all()] == ["c", "a"]


def test_files_are_private_to_their_owner(tmp_path: Path) -> None:
    store = notes(tmp_path)
    store.save(Note("secret", 1.0))
    assert stat.S_IMODE(store.path("secret").stat().st_mode) == 0o600


def test_unreadable_records_and_crash_leftovers_are_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = notes(tmp_path)
    store.save(Note("good", 1.0))
    (tmp_path / "torn.json").write_text('{"name": "torn", "crea', encoding="utf-8")
    (tmp_path / "wrong.json").write_text(json.dumps({"name": "wrong"}), encoding="utf-8")
    (tmp_path / ".good.abc123.tmp").write_text("{", encoding="utf-8")
    assert [n.name for n in store.load_all()] == ["good"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.json"]
    assert "dropping unreadable note record" in caplog.text and "torn.json" in caplog.text


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    write_json_atomic(path, {"v": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"v": object()})
    assert json.loads(path.read_text(encoding="utf-8")) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
