"""The output of one run: a size-limited tmpfs at /output inside the sandbox (every byte written counts,
also that of a file already unlinked), measured against the output limits while the run goes, and
copied after the run into the caller's host folder when it kept every limit.

The bootstrap hands the runner a descriptor of the tmpfs when the sandbox comes up (SCM_RIGHTS over the
started socket); the tmpfs lives as long as the runner holds it, so the copy is made after every
process of the run is gone. Every walk here works on folder descriptors and never follows a symbolic
link, so a computation that swaps a folder for a link cannot lead the runner anywhere else. Every walk
is bounded: by the file limit, a depth limit, or the number of entries a run could create.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from custos.sandbox.limits import SandboxLimits

# Deeper folders are refused: no result needs them, and a walk holds one descriptor per level.
MAX_DEPTH = 32
# Clearing a folder moves each entry at most once; this bounds that loop whatever a run left behind.
_MAX_CLEAR_STEPS = 50_000_000
_COPY_BYTES = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class OutputUsage:
    """What a walk saw. `complete` is False when it stopped early because a limit was already broken."""

    entries: int = 0
    bytes: int = 0
    too_deep: bool = False
    irregular: list[str] = field(default_factory=list)
    complete: bool = True

    def breach(self, limits: SandboxLimits) -> str | None:
        if self.irregular:
            return (
                f"output contains {self.irregular[0]}, which is not a regular file or folder "
                "(links, pipes, sockets and devices are not allowed)"
            )
        if self.bytes > limits.output_bytes:
            return limits.output_size_breach()
        if self.entries > limits.output_files:
            return limits.output_files_breach()
        if self.too_deep:
            return f"output folders are nested more than {MAX_DEPTH} levels deep"
        return None


class _Listing(Iterator[os.DirEntry[str]], Protocol):
    """What os.scandir returns: an iterator that holds a descriptor until closed."""

    def close(self) -> None: ...


def _entries(root_fd: int) -> Iterator[tuple[int, os.DirEntry[str], str, int]]:
    """(folder descriptor, entry, relative name, depth) for everything below the folder `root_fd`,
    depth first. Descends into folders up to MAX_DEPTH; deeper folders are yielded but not entered."""
    stack: list[tuple[int, _Listing, str]] = []

    def enter(fd: int, prefix: str) -> None:
        try:
            stack.append((fd, os.scandir(fd), prefix))
        except OSError:
            os.close(fd)
            raise

    enter(os.dup(root_fd), "")
    try:
        while stack:
            fd, entries, prefix = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                _close(fd, entries)
                continue
            name = prefix + entry.name
            depth = len(stack)
            yield fd, entry, name, depth
            if depth < MAX_DEPTH and entry.is_dir(follow_symlinks=False):
                try:
                    child = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
                except OSError:
                    continue  # swapped or removed since it was listed
                enter(child, name + "/")
    finally:
        for fd, entries, _ in stack:
            _close(fd, entries)


def _close(fd: int, entries: _Listing) -> None:
    entries.close()
    os.close(fd)


def _free_name(root_fd: int, after: int) -> int:
    """The first n > `after` for which `.custos-clear-<n>` does not exist at the top level."""
    for candidate in range(after + 1, after + _MAX_CLEAR_STEPS):
        try:
            os.stat(f".custos-clear-{candidate}", dir_fd=root_fd, follow_symlinks=False)
        except FileNotFoundError:
            return candidate
    raise OSError("no free name to clear the output folder")


def measure(root_fd: int, limits: SandboxLimits) -> OutputUsage:
    """Sizes and counts of everything below the folder `root_fd`, stopping at the first broken limit."""
    usage = OutputUsage()
    for fd, entry, name, depth in _entries(root_fd):
        usage.entries += 1
        try:
            info = os.stat(entry.name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(info.st_mode):
            usage.bytes += info.st_size
        elif stat.S_ISDIR(info.st_mode):
            usage.too_deep = usage.too_deep or depth >= MAX_DEPTH
        else:
            usage.irregular.append(name)
        if usage.breach(limits) is not None:
            usage.complete = False
            break
    return usage


class OutputFolder:
    """The host folder a run's output is copied into."""

    def __init__(self, path: Path, limits: SandboxLimits) -> None:
        self.path = path
        self.limits = limits

    def measure(self) -> OutputUsage:
        """Sizes and counts, stopping at the first broken limit."""
        fd = os.open(self.path, _DIR_FLAGS)
        try:
            return measure(fd, self.limits)
        finally:
            os.close(fd)

    def receive(self, source_fd: int) -> OutputUsage:
        """Copy everything below the folder `source_fd` (the run's tmpfs, once the run is over) into this
        folder: folders and regular files only, files owner-only, a same-named file replaced. Stops
        at the first broken limit, counting the bytes actually copied; the caller then clears."""
        usage = OutputUsage()
        folders: dict[str, int] = {"": os.open(self.path, _DIR_FLAGS)}
        try:
            for fd, entry, name, depth in _entries(source_fd):
                usage.entries += 1
                prefix = name[: len(name) - len(entry.name)]
                for done in [key for key in folders if not prefix.startswith(key)]:
                    os.close(folders.pop(done))  # the walk is depth first: only ancestors stay open
                parent = folders[prefix]
                try:
                    info = os.stat(entry.name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.S_ISDIR(info.st_mode):
                    usage.too_deep = usage.too_deep or depth >= MAX_DEPTH
                    if not usage.too_deep:
                        folders[name + "/"] = _make_folder(entry.name, parent)
                elif stat.S_ISREG(info.st_mode):
                    usage.bytes += _copy_file(fd, entry.name, parent, self.limits.output_bytes - usage.bytes)
                else:
                    usage.irregular.append(name)
                if usage.breach(self.limits) is not None:
                    usage.complete = False
                    break
        finally:
            for fd in folders.values():
                os.close(fd)
        return usage

    def clear(self) -> None:
        """Remove everything inside the folder, however deep, without recursion or following links."""
        root_fd = os.open(self.path, _DIR_FLAGS)
        try:
            moved = 0
            for _ in range(_MAX_CLEAR_STEPS):
                names = os.listdir(root_fd)
                if not names:
                    return
                for name in names:
                    moved = self._clear_entry(root_fd, name, moved)
        finally:
            os.close(root_fd)

    @staticmethod
    def _clear_entry(root_fd: int, name: str, moved: int) -> int:
        """Remove one top-level entry; its sub-folders move up to the top level to be removed later,
        so no walk ever goes deeper than one level."""
        try:
            info = os.stat(name, dir_fd=root_fd, follow_symlinks=False)
        except FileNotFoundError:
            return moved
        if not stat.S_ISDIR(info.st_mode):
            os.unlink(name, dir_fd=root_fd)
            return moved
        fd = os.open(name, _DIR_FLAGS, dir_fd=root_fd)
        try:
            for child in os.listdir(fd):
                child_info = os.stat(child, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISDIR(child_info.st_mode):
                    moved = _free_name(root_fd, moved)
                    os.rename(child, f".custos-clear-{moved}", src_dir_fd=fd, dst_dir_fd=root_fd)
                else:
                    os.unlink(child, dir_fd=fd)
        finally:
            os.close(fd)
        os.rmdir(name, dir_fd=root_fd)
        return moved


def _make_folder(name: str, parent_fd: int) -> int:
    """A folder `name` in `parent_fd` (made owner-only, or one that is already there), opened."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o700, dir_fd=parent_fd)
    return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)


def _copy_file(source_dir: int, name: str, target_dir: int, room: int) -> int:
    """Copy regular file `name` from one folder to another, at most `room` + 1 bytes (one more than the
    room shows a breach without copying all of it). Returns the bytes copied."""
    source = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=source_dir)
    try:
        if not stat.S_ISREG(os.fstat(source).st_mode):
            raise OSError(f"output entry {name} changed while it was copied")
        target = os.open(
            name,
            os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=target_dir,
        )
        try:
            copied = 0
            while copied <= room and (chunk := os.read(source, min(_COPY_BYTES, room + 1 - copied))):
                os.write(target, chunk)
                copied += len(chunk)
            return copied
        finally:
            os.close(target)
    finally:
        os.close(source)
