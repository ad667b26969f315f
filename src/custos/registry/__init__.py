"""Model packages: manifest, deterministic archive, signature, verification before unpacking."""

from custos.registry.archive import LIMITS, ArchiveLimits, BuiltArchive, build_archive
from custos.registry.manifest import (
    MANIFEST_FILE,
    FileOutput,
    JsonOutput,
    ModelManifest,
    Parameter,
    TableOutput,
    load_manifest,
    parse_manifest,
)
from custos.registry.refusals import PackageRefused, Refusal
from custos.registry.sealed import SealedArchive, VerifiedSealed, open_sealed, seal_archive, verify_sealed
from custos.registry.signature import PUBLISHER_ROLES, check_signature, sign_archive, sign_message
from custos.registry.unpack import unpack_package
from custos.registry.verify import PackageFile, VerifiedPackage, verify_package

__all__ = [
    "LIMITS",
    "MANIFEST_FILE",
    "PUBLISHER_ROLES",
    "ArchiveLimits",
    "BuiltArchive",
    "FileOutput",
    "JsonOutput",
    "ModelManifest",
    "PackageFile",
    "PackageRefused",
    "Parameter",
    "Refusal",
    "SealedArchive",
    "TableOutput",
    "VerifiedPackage",
    "VerifiedSealed",
    "build_archive",
    "check_signature",
    "load_manifest",
    "open_sealed",
    "parse_manifest",
    "seal_archive",
    "sign_archive",
    "sign_message",
    "unpack_package",
    "verify_package",
    "verify_sealed",
]
