from __future__ import annotations

import os
from pathlib import Path

import pytest

from custos.sandbox.limits import SandboxLimits
from custos.sandbox.output import MAX_DEPTH, OutputFolder

LIMITS = SandboxLimits(output_bytes=1000, output_files=5)


def make_chain(root: Path, depth: int) -> None:
    """`depth` nested folders, made through descriptors so the path length never matters."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        os.close(os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd))
    finally:
        os.close(fd)


def test_measure_counts_entries_and_bytes(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_bytes(b"x" * 300)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.csv").write_bytes(b"y" * 200)

    usage = OutputFolder(tmp_path, LIMITS).measure()

    assert (usage.entries, usage.bytes, usage.irregular, usage.too_deep) == (3, 500, [], False)
    assert usage.breach(LIMITS) is None


def test_too_many_bytes_or_entries_is_a_breach(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * 1001)
    assert OutputFolder(tmp_path, LIMITS).measure().breach(LIMITS) == "output limit of 1000 bytes exceeded"

    (tmp_path / "big").unlink()
    for i in range(6):
        (tmp_path / f"f{i}").touch()
    assert OutputFolder(tmp_path, LIMITS).measure().breach(LIMITS) == "output limit of 5 files exceeded"


def test_measure_stops_once_a_limit_is_broken(tmp_path: Path) -> None:
    for i in range(50):
        (tmp_path / f"f{i}").touch()

    usage = OutputFolder(tmp_path, LIMITS).measure()

    assert usage.entries == LIMITS.output_files + 1
    assert not usage.complete


def test_links_and_pipes_are_breaches_and_are_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s" * 5000)
    output = tmp_path / "output"
    output.mkdir()
    (output / "result.json").symlink_to(outside / "secret")
    (output / "dir").symlink_to(outside)

    usage = OutputFolder(output, LIMITS).measure()

    assert usage.bytes == 0
    assert usage.irregular[0] in {"result.json", "dir"}
    breach = usage.breach(LIMITS)
    assert breach is not None and "not a regular file or folder" in breach

    fifo_output = tmp_path / "fifo-output"
    fifo_output.mkdir()
    os.mkfifo(fifo_output / "pipe")
    assert OutputFolder(fifo_output, LIMITS).measure().irregular == ["pipe"]


def test_deep_nesting_is_a_breach(tmp_path: Path) -> None:
    make_chain(tmp_path, MAX_DEPTH + 5)
    limits = SandboxLimits(output_files=1000)

    usage = OutputFolder(tmp_path, limits).measure()

    assert usage.too_deep
    assert usage.breach(limits) == f"output folders are nested more than {MAX_DEPTH} levels deep"


def test_clear_removes_any_depth_without_following_links(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("mine")
    output = tmp_path / "output"
    output.mkdir()
    make_chain(output, 2100)  # deeper than PATH_MAX allows as one path, and than Python's recursion limit
    (output / "link").symlink_to(outside)
    (output / "d" / "link").symlink_to(outside / "keep")
    (output / ".custos-clear-1").mkdir()  # a name the clearing itself uses

    OutputFolder(output, LIMITS).clear()

    assert list(output.iterdir()) == []
    assert (outside / "keep").read_text() == "mine"


@pytest.mark.skipif(os.geteuid() != 0, reason="lending the folder to another uid needs root")
def test_lend_and_reclaim_hand_the_folder_over_and_back(tmp_path: Path) -> None:
    output = tmp_path / "output"
    output.mkdir(mode=0o750)
    folder = OutputFolder(output, LIMITS)

    folder.lend(234_567, 234_567)
    assert (output.stat().st_uid, oct(output.stat().st_mode & 0o777)) == (234_567, "0o700")
    (output / "sub").mkdir()
    (output / "sub" / "r.json").write_text("{}")
    for path in (output / "sub", output / "sub" / "r.json"):
        os.chown(path, 234_567, 234_567)

    folder.reclaim()

    for path in (output, output / "sub", output / "sub" / "r.json"):
        assert (path.stat().st_uid, path.stat().st_gid) == (os.getuid(), os.getgid())
    assert oct(output.stat().st_mode & 0o777) == "0o750"
