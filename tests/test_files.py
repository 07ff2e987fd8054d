"""Atomic writes: the old file or the new one, never half; no temp files left; open()'s permissions."""

import os
import stat

import pytest

from fpml.files import atomic_write, write_text


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = write_text(tmp_path / "log.jsonl", "old\n")
    with pytest.raises(RuntimeError), atomic_write(target) as handle:
        handle.write("half of the new")
        raise RuntimeError("disk full")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.jsonl"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_new_files_get_the_permissions_open_gives(tmp_path, umask):
    previous = os.umask(umask)
    try:
        write_text(tmp_path / "atomic.txt", "x")
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(previous)
    mode = lambda name: stat.S_IMODE((tmp_path / name).stat().st_mode)  # noqa: E731
    assert mode("atomic.txt") == mode("plain.txt") == 0o666 & ~umask


def test_binary_mode_and_replacing(tmp_path):
    target = tmp_path / "sub" / "best.npz"  # the folder is made
    for payload in (b"\x00first", b"\x01second"):
        with atomic_write(target, "wb") as handle:
            handle.write(payload)
        assert target.read_bytes() == payload
    assert sorted(p.name for p in target.parent.iterdir()) == ["best.npz"]
