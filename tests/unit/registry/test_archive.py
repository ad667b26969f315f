"""Deterministic archives: the same folder gives the same bytes, whatever the clock or the file order."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from custos.core.digest import sha256_hex
from custos.core.errors import InvalidInput
from custos.registry import ArchiveLimits, build_archive
from custos.registry.archive import FIXED_TIME


def test_the_same_folder_gives_the_same_digest_twice(package_dir: Path) -> None:
    first = build_archive(package_dir)
    second = build_archive(package_dir)
    assert first.data == second.data
    assert first.digest == second.digest == sha256_hex(first.data)
    assert first.manifest.ref == "cohort-summary@1.0.0"


def test_timestamps_and_permissions_of_the_folder_do_not_change_the_digest(package_dir: Path) -> None:
    before = build_archive(package_dir).digest
    main = package_dir / "cohort_summary" / "main.py"
    os.utime(main, (1_000_000, 1_000_000))
    main.chmod(0o600)
    assert build_archive(package_dir).digest == before
    main.write_text("def run(dal, params):\n    return {'changed': 1}\n", encoding="utf-8")
    assert build_archive(package_dir).digest != before


def test_entries_are_sorted_regular_files_with_fixed_headers(package_dir: Path) -> None:
    (package_dir / "cohort_summary" / "__pycache__").mkdir()
    (package_dir / "cohort_summary" / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0")
    (package_dir / "run.sh").write_text("#!/bin/sh\n", encoding="utf-8")
    (package_dir / "run.sh").chmod(0o700)
    built = build_archive(package_dir)
    with zipfile.ZipFile(io.BytesIO(built.data)) as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    assert (
        names
        == sorted(names)
        == [
            "cohort_summary/__init__.py",
            "cohort_summary/main.py",
            "custos-model.toml",
            "run.sh",
        ]
    )
    assert {i.date_time for i in infos} == {FIXED_TIME}
    assert {i.create_system for i in infos} == {3}
    modes = {i.filename: i.external_attr >> 16 for i in infos}
    assert modes["run.sh"] == 0o100755 and modes["custos-model.toml"] == 0o100644
    assert all(i.extra == b"" for i in infos)
    assert built.files == 4


def test_a_symbolic_link_in_the_folder_is_refused(package_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("key", encoding="utf-8")
    (package_dir / "leak.txt").symlink_to(tmp_path / "secret")
    with pytest.raises(InvalidInput, match=r"leak\.txt is a symbolic link"):
        build_archive(package_dir)


def test_a_linked_folder_is_refused(package_dir: Path, tmp_path: Path) -> None:
    (package_dir / "etc").symlink_to(tmp_path)
    with pytest.raises(InvalidInput, match="etc is a symbolic link"):
        build_archive(package_dir)


def test_odd_file_names_are_refused(package_dir: Path) -> None:
    (package_dir / "bad name.py").write_text("", encoding="utf-8")
    with pytest.raises(InvalidInput, match="not a plain relative path"):
        build_archive(package_dir)


def test_size_and_count_caps_apply_when_building(package_dir: Path) -> None:
    with pytest.raises(InvalidInput, match="more than 2 files"):
        build_archive(package_dir, ArchiveLimits(max_entries=2))
    (package_dir / "data.bin").write_bytes(os.urandom(4096))
    with pytest.raises(InvalidInput, match="a model archive may have 1024"):
        build_archive(package_dir, ArchiveLimits(max_archive_bytes=1024))
    with pytest.raises(InvalidInput, match="a package file may have 2048"):
        build_archive(package_dir, ArchiveLimits(max_entry_bytes=2048))


def test_a_folder_that_is_not_a_package_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"has no custos-model\.toml"):
        build_archive(tmp_path)
