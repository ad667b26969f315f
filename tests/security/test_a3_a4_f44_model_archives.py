"""A3, A4, F44: tampered and hostile model archives are refused before anything is unpacked.

Each attack goes through the gateway's ModelCache as an orchestrator would relay it. Structural
attacks (`..`, absolute paths, links, devices, bombs) are signed with a publisher's valid key, so
they show that a trusted signature does not make hostile content acceptable. After each refusal the
folder holding the cache (and everything around it) is exactly as before.
"""

from __future__ import annotations

import base64
import hashlib
import io
import stat
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from custos.core.clock import utcnow
from custos.core.digest import sha256_hex
from custos.core.wire import ModelArchive, ModelSignature, model_message
from custos.gateway.model_cache import ModelCache
from custos.gateway.trust import GatewayTrust
from custos.pki.certs import certificate_pem
from custos.pki.kit import Kit, load_kit
from custos.pki.project import ProjectSpec
from custos.pki.provision import provision
from custos.pki.revocation import revoke_participant
from custos.pki.verify import sign
from custos.registry import ArchiveLimits, PackageRefused, Refusal, build_archive, verify_package
from custos.registry.archive import entry_info

MANIFEST = b"""\
name = "summary"
version = "1.0.0"
entrypoint = "summary:run"
[outputs.result]
kind = "json"
max_bytes = 10000
"""
CODE = b"def run(dal, params):\n    return {}\n"


@dataclass(frozen=True)
class Project:
    out: Path
    kits: dict[str, Kit]


def _provision(out: Path, name: str, people: list[tuple[str, str, str, str | None]]) -> Project:
    participants = [{"name": n, "type": t, "org": o, **({"role": r} if r else {})} for n, t, o, r in people]
    provision(ProjectSpec.model_validate({"name": name, "participants": participants}), out)
    return Project(out, {p.name: load_kit(p) for p in out.iterdir() if (p / "config.json").exists()})


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return _provision(
        tmp_path_factory.mktemp("models") / "project",
        "models",
        [
            ("site-a", "gateway", "hospital-a", None),
            ("alice", "user", "university", "lead_researcher"),
            ("carol", "user", "university", "lead_researcher"),
            ("max", "user", "university", "member_researcher"),
        ],
    )


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return _provision(
        tmp_path_factory.mktemp("foreign") / "project",
        "other",
        [("eve", "user", "university", "lead_researcher")],
    )


class Relay:
    """An orchestrator that serves whatever archive the attacker gives it."""

    def __init__(self) -> None:
        self.archive: ModelArchive | None = None
        self.calls = 0

    def model_archive(self, name: str, version: str) -> ModelArchive:
        self.calls += 1
        assert self.archive is not None
        return self.archive


def signed(data: bytes, kit: Kit, name: str = "summary", version: str = "1.0.0") -> ModelArchive:
    digest = sha256_hex(data)
    return ModelArchive(
        name=name,
        version=version,
        digest=digest,
        signer_certificate_pem=certificate_pem(kit.certificate),
        signature=base64.b64encode(sign(kit.private_key, model_message(name, version, digest))).decode(),
        signer=kit.identity.name,
        published_at=utcnow(),
        archive_b64=base64.b64encode(data).decode(),
    )


def zip_of(*entries: tuple[zipfile.ZipInfo | str, bytes], manifest: bytes | None = MANIFEST) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        if manifest is not None:
            zf.writestr(entry_info("custos-model.toml"), manifest)
        for info, data in entries:
            zf.writestr(entry_info(info) if isinstance(info, str) else info, data)
    return buffer.getvalue()


def raw_entry(name: str, mode: int = stat.S_IFREG | 0o644, extra: bytes = b"") -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.create_system = 3
    info.external_attr = mode << 16
    info.extra = extra
    return info


def good_archive() -> bytes:
    return zip_of(("summary.py", CODE))


def snapshot(root: Path) -> set[tuple[str, int]]:
    return {
        (p.relative_to(root).as_posix(), p.stat().st_size if p.is_file() else -1) for p in root.rglob("*")
    }


Side = tuple[ModelCache, GatewayTrust, Path]


@pytest.fixture
def gateway(project: Project, tmp_path: Path) -> Side:
    """A gateway's model cache, its trust (root CA, revocation list) and its state folder."""
    state = tmp_path / "gateway-state"
    state.mkdir()
    trust = GatewayTrust(project.kits["site-a"].root_certificate, state, utcnow)
    return ModelCache(state, trust.check_certificate), trust, state


def refused_by_cache(gateway, tmp_path: Path, archive: ModelArchive) -> PackageRefused:
    """Fetch `archive` through the cache; return the refusal, after checking nothing was written."""
    cache, _, _ = gateway
    relay = Relay()
    relay.archive = archive
    before = snapshot(tmp_path)
    with pytest.raises(PackageRefused) as refused:
        cache.fetch(relay, "summary@1.0.0")
    assert snapshot(tmp_path) == before, "a refused archive left files behind"
    return refused.value


def flip_byte(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


# --- F44: integrity of the signed archive ---------------------------------------------------------


def test_f44_a_flipped_byte_is_refused_as_a_digest_mismatch(
    project: Project, gateway: Side, tmp_path: Path
) -> None:
    good = signed(good_archive(), project.kits["alice"])
    data = base64.b64decode(good.archive_b64)
    tampered = good.model_copy(
        update={"archive_b64": base64.b64encode(flip_byte(data, len(data) // 2)).decode()}
    )
    refusal = refused_by_cache(gateway, tmp_path, tampered)
    assert refusal.reason is Refusal.DIGEST_MISMATCH
    assert "changed or truncated after it was signed" in refusal.message


def test_f44_a_truncated_archive_is_refused(project: Project, gateway: Side, tmp_path: Path) -> None:
    good = signed(good_archive(), project.kits["alice"])
    data = base64.b64decode(good.archive_b64)
    cut = good.model_copy(update={"archive_b64": base64.b64encode(data[:-40]).decode()})
    assert refused_by_cache(gateway, tmp_path, cut).reason is Refusal.DIGEST_MISMATCH
    # even when the truncated bytes are signed afresh, they are not a zip
    resigned = signed(data[:-40], project.kits["alice"])
    assert refused_by_cache(gateway, tmp_path, resigned).reason is Refusal.NOT_A_ZIP


def test_f44_a_swapped_manifest_is_refused(project: Project, gateway: Side, tmp_path: Path) -> None:
    alice = project.kits["alice"]
    other = MANIFEST.replace(b'name = "summary"', b'name = "exporter"')
    # a validly signed archive of another model, relabelled as summary@1.0.0: the signature covers the name
    relabelled = signed(zip_of(("summary.py", CODE), manifest=other), alice, name="exporter")
    relabelled = relabelled.model_copy(update={"name": "summary"})
    assert refused_by_cache(gateway, tmp_path, relabelled).reason is Refusal.BAD_SIGNATURE
    # the manifest inside replaced after signing: the digest changes
    good = signed(good_archive(), alice)
    swapped = good.model_copy(
        update={"archive_b64": base64.b64encode(zip_of(("summary.py", CODE), manifest=other)).decode()}
    )
    assert refused_by_cache(gateway, tmp_path, swapped).reason is Refusal.DIGEST_MISMATCH
    # signed as summary@1.0.0 but holding the manifest of exporter
    mismatched = signed(zip_of(("summary.py", CODE), manifest=other), alice)
    refusal = refused_by_cache(gateway, tmp_path, mismatched)
    assert refusal.reason is Refusal.MANIFEST_MISMATCH
    assert "holds the manifest of exporter@1.0.0" in refusal.message


def test_f44_a_forged_or_untrusted_signature_is_refused(
    project: Project, foreign: Project, gateway: Side, tmp_path: Path
) -> None:
    good = signed(good_archive(), project.kits["alice"])
    forged = good.model_copy(update={"signature": signed(b"other", project.kits["alice"]).signature})
    assert refused_by_cache(gateway, tmp_path, forged).reason is Refusal.BAD_SIGNATURE
    outsider = signed(good_archive(), foreign.kits["eve"])
    refusal = refused_by_cache(gateway, tmp_path, outsider)
    assert refusal.reason is Refusal.UNTRUSTED_SIGNER
    assert "not signed by this project's CA" in refusal.message
    member = signed(good_archive(), project.kits["max"])
    refusal = refused_by_cache(gateway, tmp_path, member)
    assert refusal.reason is Refusal.SIGNER_ROLE
    assert "member_researcher" in refusal.message


# --- A4: paths, links and special files -----------------------------------------------------------

HOSTILE_ENTRIES: list[tuple[str, Callable[[], bytes], Refusal, str]] = [
    ("dotdot", lambda: zip_of((raw_entry("../evil.py"), b"x")), Refusal.UNSAFE_PATH, "climbs out"),
    (
        "nested dotdot",
        lambda: zip_of((raw_entry("a/../../evil.py"), b"x")),
        Refusal.UNSAFE_PATH,
        "climbs out",
    ),
    ("absolute", lambda: zip_of((raw_entry("/tmp/evil.py"), b"x")), Refusal.UNSAFE_PATH, "absolute path"),
    ("drive", lambda: zip_of((raw_entry("C:/evil.py"), b"x")), Refusal.UNSAFE_PATH, "absolute path"),
    ("backslash", lambda: zip_of((raw_entry("a\\..\\evil.py"), b"x")), Refusal.UNSAFE_PATH, "climbs out"),
    (
        "symlink",
        lambda: zip_of((raw_entry("key.pem", stat.S_IFLNK | 0o777), b"/etc/custos/key.pem")),
        Refusal.LINK,
        "symbolic link",
    ),
    (
        "hardlink",
        lambda: zip_of((raw_entry("key.pem", extra=struct.pack("<HH", 0x000D, 12) + bytes(12)), b"")),
        Refusal.LINK,
        "hard or symbolic link",
    ),
    (
        "device",
        lambda: zip_of((raw_entry("tty", stat.S_IFCHR | 0o666), b"")),
        Refusal.SPECIAL_FILE,
        "character device",
    ),
    (
        "fifo",
        lambda: zip_of((raw_entry("pipe", stat.S_IFIFO | 0o644), b"")),
        Refusal.SPECIAL_FILE,
        "named pipe",
    ),
    (
        "directory",
        lambda: zip_of((raw_entry("pkg/", stat.S_IFDIR | 0o755), b"")),
        Refusal.SPECIAL_FILE,
        "directory",
    ),
    (
        "duplicate",
        lambda: zip_of(("summary.py", CODE), ("Summary.py", CODE)),
        Refusal.DUPLICATE_ENTRY,
        "twice",
    ),
    (
        "no manifest",
        lambda: zip_of(("summary.py", CODE), manifest=None),
        Refusal.MANIFEST_MISSING,
        "no custos",
    ),
]


@pytest.mark.parametrize(
    ("label", "make", "reason", "words"), HOSTILE_ENTRIES, ids=[h[0] for h in HOSTILE_ENTRIES]
)
def test_a4_hostile_entries_are_refused_before_unpacking(
    project: Project,
    gateway: Side,
    tmp_path: Path,
    label: str,
    make: Callable[[], bytes],
    reason: Refusal,
    words: str,
) -> None:
    refusal = refused_by_cache(gateway, tmp_path, signed(make(), project.kits["alice"]))
    assert refusal.reason is reason, refusal.message
    assert words in refusal.message
    assert not (tmp_path.parent / "evil.py").exists()


# --- A3: bombs and counts -------------------------------------------------------------------------


def test_a3_too_many_entries_are_refused(project: Project) -> None:
    archive = signed(zip_of(*((f"f{i}.py", b"") for i in range(40))), project.kits["alice"])
    signature = ModelSignature.model_validate(archive.model_dump(include=set(ModelSignature.model_fields)))
    with pytest.raises(PackageRefused) as refused:
        verify_package(
            base64.b64decode(archive.archive_b64),
            signature,
            lambda cert: project.kits["alice"].identity,
            ArchiveLimits(max_entries=20),
        )
    assert refused.value.reason is Refusal.TOO_MANY_ENTRIES
    assert "41 entries; at most 20" in refused.value.message


def test_a3_a_high_ratio_entry_is_refused_as_a_zip_bomb(
    project: Project, gateway: Side, tmp_path: Path
) -> None:
    bomb = zip_of(("zeros.bin", bytes(8 * 1024 * 1024)))
    assert len(bomb) < 20_000  # 8 MiB of zeros deflate to a few kilobytes
    refusal = refused_by_cache(gateway, tmp_path, signed(bomb, project.kits["alice"]))
    assert refusal.reason is Refusal.ZIP_BOMB
    assert "more than 100 times" in refusal.message


def test_a3_declared_sizes_over_the_caps_are_refused(project: Project) -> None:
    alice = project.kits["alice"]
    # hash output does not compress, so the ratio check passes and the size caps must do the work
    noise = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(938))[:30_000]

    def refusal(data: bytes, limits: ArchiveLimits) -> PackageRefused:
        archive = signed(data, alice)
        signature = ModelSignature.model_validate(
            archive.model_dump(include=set(ModelSignature.model_fields))
        )
        with pytest.raises(PackageRefused) as refused:
            verify_package(data, signature, lambda cert: alice.identity, limits)
        return refused.value

    one = refusal(zip_of(("weights.bin", noise)), ArchiveLimits(max_entry_bytes=20_000))
    assert one.reason is Refusal.ZIP_BOMB
    assert "declares 30000 bytes; an entry may have 20000" in one.message
    three = zip_of(("a.bin", noise), ("b.bin", noise), ("c.bin", noise))
    total = refusal(three, ArchiveLimits(max_total_bytes=64_000))
    assert total.reason is Refusal.ZIP_BOMB
    assert "more than 64000 bytes once decompressed" in total.message
    whole = refusal(three, ArchiveLimits(max_archive_bytes=10_000))
    assert whole.reason is Refusal.TOO_LARGE


def test_a3_an_entry_that_lies_about_its_size_is_refused_while_streaming(
    project: Project, gateway: Side, tmp_path: Path
) -> None:
    honest = zip_of(("data.bin", b"a" * 50_000))
    # declare 1 000 bytes in the local header and the central directory: it decompresses past that
    info = zipfile.ZipFile(io.BytesIO(honest)).getinfo("data.bin")
    lying = bytearray(honest)
    for at in _size_fields(honest, b"data.bin"):
        lying[at : at + 4] = struct.pack("<I", 1000)
    assert zipfile.ZipFile(io.BytesIO(bytes(lying))).getinfo("data.bin").file_size == 1000 != info.file_size
    refusal = refused_by_cache(gateway, tmp_path, signed(bytes(lying), project.kits["alice"]))
    assert refusal.reason is Refusal.DAMAGED_ENTRY
    assert "data.bin" in refusal.message


def _size_fields(data: bytes, name: bytes) -> list[int]:
    """Offsets of the uncompressed-size field of `name` in its local header and central entry."""
    offsets = []
    at = 0
    while (at := data.find(b"PK\x03\x04", at)) >= 0:
        if data[at + 30 : at + 30 + len(name)] == name:
            offsets.append(at + 22)
        at += 4
    at = 0
    while (at := data.find(b"PK\x01\x02", at)) >= 0:
        if data[at + 46 : at + 46 + len(name)] == name:
            offsets.append(at + 24)
        at += 4
    assert len(offsets) == 2, offsets
    return offsets


# --- the cache: verified on the way in, and again on every use ------------------------------------


def test_a_good_archive_is_cached_by_digest_and_reverified_from_the_cache(
    project: Project, gateway: Side, package_folder: Path
) -> None:
    cache, _, state = gateway
    built = build_archive(package_folder)
    relay = Relay()
    relay.archive = signed(built.data, project.kits["alice"])
    model = cache.fetch(relay, "summary@1.0.0")
    assert model.digest == built.digest and model.signer.name == "alice"
    assert model.path == state / "models" / built.digest
    assert (model.path / "summary.py").read_bytes() == CODE
    assert cache.fetch(relay, "summary@1.0.0").path == model.path
    assert relay.calls == 1  # the second fetch came from the cache
    # a file changed on disk is restored from the verified archive
    (model.path / "summary.py").write_bytes(b"import os; os.system('curl evil')\n")
    (model.path / "extra.py").write_bytes(b"")
    assert cache.path(built.digest) == model.path
    assert (model.path / "summary.py").read_bytes() == CODE
    assert not (model.path / "extra.py").exists()
    # a stored archive changed on disk is refused, not used
    stored = state / "models" / f"{built.digest}.zip"
    stored.write_bytes(flip_byte(stored.read_bytes(), 100))
    with pytest.raises(PackageRefused) as refused:
        cache.path(built.digest)
    assert refused.value.reason is Refusal.DIGEST_MISMATCH


def test_a_cached_package_of_a_revoked_signer_is_refused(
    project: Project, gateway: Side, package_folder: Path
) -> None:
    cache, trust, _ = gateway
    relay = Relay()
    relay.archive = signed(build_archive(package_folder).data, project.kits["carol"])
    digest = cache.fetch(relay, "summary@1.0.0").digest
    trust.update(revoke_participant(project.out, "carol").crl.pem)
    with pytest.raises(PackageRefused) as refused:
        cache.path(digest)
    assert refused.value.reason is Refusal.UNTRUSTED_SIGNER
    assert "revoked" in refused.value.message


def test_a_pinned_version_cannot_be_replaced_by_another_archive(
    project: Project, gateway: Side, package_folder: Path, tmp_path: Path
) -> None:
    cache, _, state = gateway
    relay = Relay()
    relay.archive = signed(build_archive(package_folder).data, project.kits["alice"])
    first = cache.fetch(relay, "summary@1.0.0")
    (state / "models" / f"{first.digest}.zip").unlink()  # forces a new pull
    (package_folder / "summary.py").write_bytes(CODE + b"# changed\n")
    relay.archive = signed(build_archive(package_folder).data, project.kits["alice"])
    with pytest.raises(PackageRefused) as refused:
        cache.fetch(relay, "summary@1.0.0")
    assert refused.value.reason is Refusal.DIGEST_MISMATCH
    assert "was accepted before" in refused.value.message


@pytest.fixture
def package_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "summary-package"
    folder.mkdir()
    (folder / "custos-model.toml").write_bytes(MANIFEST)
    (folder / "summary.py").write_bytes(CODE)
    return folder
