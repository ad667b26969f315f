from __future__ import annotations

import os
import resource
from pathlib import Path

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


def receive(source: Path, target: Path, limits: SandboxLimits = LIMITS) -> str | None:
    fd = os.open(source, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return OutputFolder(target, limits).receive(fd).breach(limits)
    finally:
        os.close(fd)


def test_receive_copies_folders_and_files_owner_only(tmp_path: Path) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    (source / "sub").mkdir(parents=True)
    (source / "a.json").write_bytes(b"x" * 300)
    (source / "sub" / "b.csv").write_bytes(b"y" * 200)
    target.mkdir()
    (target / "a.json").write_bytes(b"an older result, longer than the new one")

    assert receive(source, target) is None

    assert (target / "a.json").read_bytes() == b"x" * 300
    assert (target / "sub" / "b.csv").read_bytes() == b"y" * 200
    assert oct((target / "sub" / "b.csv").stat().st_mode & 0o777) == "0o600"
    assert oct((target / "sub").stat().st_mode & 0o777) == "0o700"


def test_receive_stops_at_a_breach_and_never_follows_a_link(tmp_path: Path) -> None:
    source, target, outside = tmp_path / "source", tmp_path / "target", tmp_path / "outside"
    for folder in (source, target, outside):
        folder.mkdir()
    (outside / "secret").write_text("host secret")
    (source / "r.json").symlink_to(outside / "secret")

    breach = receive(source, target)

    assert breach is not None and "output contains r.json" in breach
    assert not (target / "r.json").exists()

    (source / "r.json").unlink()
    with open(source / "big", "wb") as big:
        big.truncate(1 << 30)  # sparse: no space in the source, a gibibyte if copied whole
    assert receive(source, target) == "output limit of 1000 bytes exceeded"
    assert (target / "big").stat().st_size == LIMITS.output_bytes + 1  # the copy stopped there


def test_receive_keeps_few_folders_open_however_many_it_copies(tmp_path: Path) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    target.mkdir()
    for i in range(300):
        (source / f"d{i}" / "inner").mkdir(parents=True)
        (source / f"d{i}" / "inner" / "f").write_text(str(i))
    limits = SandboxLimits(output_files=1000)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    # Far fewer descriptors than the 600 folders: the copy holds only the folders above the current one.
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 100, hard))
    try:
        assert receive(source, target, limits) is None
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    assert (target / "d299" / "inner" / "f").read_text() == "299"
