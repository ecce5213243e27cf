"""staged_folder: the destination is only ever the old folder or the complete new one.

Reference: the file system itself (what is at the destination and beside it afterwards)."""

import pytest

from sfmobile.staged_folder import staged_folder


def test_new_folder_appears_complete_and_nothing_is_left_beside_it(tmp_path):
    with staged_folder(tmp_path / "out") as staging:
        (staging / "a.txt").write_text("new")
        assert not (tmp_path / "out").exists()  # nothing at the destination while writing
    assert (tmp_path / "out" / "a.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


CHECKPOINT_MARKER = '{"format": "sfmobile-checkpoint"}'


def test_existing_folder_is_replaced_whole(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "sfmobile.json").write_text(CHECKPOINT_MARKER)
    (tmp_path / "out" / "stale.txt").write_text("old")
    with staged_folder(tmp_path / "out") as staging:
        (staging / "sfmobile.json").write_text(CHECKPOINT_MARKER)
        (staging / "a.txt").write_text("new")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.txt", "sfmobile.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_error_keeps_the_old_folder_and_removes_the_staging(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "kept.txt").write_text("old")
    with pytest.raises(RuntimeError, match="midway"), staged_folder(tmp_path / "out") as staging:
        (staging / "a.txt").write_text("half")
        raise RuntimeError("midway")
    assert (tmp_path / "out" / "kept.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
