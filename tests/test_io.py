from __future__ import annotations

import os
import stat

import pytest

from erasekit.errors import ConfigError, OutputError, PromptsFileError
from erasekit.io import atomic_write, parse_assignments, read_csv


def test_atomic_write_text_bytes_and_writer(tmp_path):
    assert atomic_write(tmp_path / "a.txt", "héllo").read_text(encoding="utf-8") == "héllo"
    assert atomic_write(tmp_path / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    atomic_write(tmp_path / "c.txt", lambda p: p.write_text("by the writer"))
    assert (tmp_path / "c.txt").read_text() == "by the writer"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin", "c.txt"]


def test_atomic_write_replaces_and_follows_the_umask(tmp_path):
    path = tmp_path / "f"
    path.write_text("old")
    old = os.umask(0o022)
    try:
        atomic_write(path, "new")
    finally:
        os.umask(old)
    assert path.read_text() == "new" and stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "keep"
    path.write_text("precious")

    def boom(p):
        p.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, boom)
    assert path.read_text() == "precious" and [p.name for p in tmp_path.iterdir()] == ["keep"]


def test_bad_targets_are_output_errors(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        atomic_write(tmp_path / "no" / "f", "x")
    with pytest.raises(OutputError, match="is a folder"):
        atomic_write(tmp_path, "x")


def test_parse_assignments():
    assert parse_assignments(["lamb=0.1", " epochs = 2 ", "guide="]) == {"lamb": "0.1", "epochs": "2", "guide": ""}
    with pytest.raises(ConfigError, match=r"--set expects NAME=VALUE, got 'lamb'"):
        parse_assignments(["lamb"])
    with pytest.raises(ConfigError, match="names 'lamb' twice"):
        parse_assignments(["lamb=1", "lamb=2"])
    with pytest.raises(ConfigError, match="--weights expects"):
        parse_assignments(["=x"], option="--weights")


def test_read_csv_names_missing_columns(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("prompt,seed\na cat,1\n")
    assert read_csv(path, required=["prompt"]) == [{"prompt": "a cat", "seed": "1"}]
    with pytest.raises(PromptsFileError, match=r"lacks the column\(s\) \['label'\]"):
        read_csv(path, required=["label"])
    with pytest.raises(PromptsFileError, match="not found"):
        read_csv(tmp_path / "none.csv", required=[])


def test_check_writable_refuses_files_and_unwritable_folders_and_creates_nothing(tmp_path):
    from erasekit.io import check_writable
    from tests.paths import unwritable_folder

    check_writable(tmp_path / "new" / "deeper")  # a folder to be made under a writable one: fine
    assert list(tmp_path.iterdir()) == []  # nothing created, no probe left
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        check_writable(tmp_path / "f" / "run")
    with pytest.raises(OutputError, match="writable folder"):
        check_writable(unwritable_folder(tmp_path) / "run")
