import pytest

from napari_cosynth.atomic import atomic_path, write_text


def test_write_text_replaces_whole_file(tmp_path):
    target = tmp_path / "a.txt"
    write_text(target, "one")
    write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_failure_leaves_nothing_behind(tmp_path):
    target = tmp_path / "pair"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "image.png").write_bytes(b"partial")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_no_overwrite_keeps_the_earlier_folder(tmp_path):
    target = tmp_path / "pair"
    with atomic_path(target, overwrite=False) as tmp:
        tmp.mkdir()
        (tmp / "x").write_text("first")
    with pytest.raises(FileExistsError, match="refusing to overwrite"), atomic_path(target, overwrite=False) as tmp:
        tmp.mkdir()
        (tmp / "x").write_text("second")
    assert (target / "x").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["pair"]
