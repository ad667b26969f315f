"""Why a model package is refused. Every refusal names its reason before anything is unpacked."""

from __future__ import annotations

from enum import StrEnum

from custos.core.errors import ContentRefused


class Refusal(StrEnum):
    TOO_LARGE = "too_large"
    DIGEST_MISMATCH = "digest_mismatch"
    UNTRUSTED_SIGNER = "untrusted_signer"
    SIGNER_ROLE = "signer_role"
    BAD_SIGNATURE = "bad_signature"
    NOT_A_ZIP = "not_a_zip"
    UNSAFE_PATH = "unsafe_path"
    LINK = "link"
    SPECIAL_FILE = "special_file"
    DUPLICATE_ENTRY = "duplicate_entry"
    TOO_MANY_ENTRIES = "too_many_entries"
    ZIP_BOMB = "zip_bomb"
    UNSUPPORTED_ENTRY = "unsupported_entry"
    DAMAGED_ENTRY = "damaged_entry"
    MANIFEST_MISSING = "manifest_missing"
    MANIFEST_INVALID = "manifest_invalid"
    MANIFEST_MISMATCH = "manifest_mismatch"
    # confidential packages (custos.registry.sealed)
    TERMS_MISSING = "terms_missing"  # a sealed archive without its terms, or terms on a plain one
    TERMS_INVALID = "terms_invalid"  # terms whose manifest does not validate or names another model
    DECRYPT_FAILED = "decrypt_failed"  # the AES-GCM tag does not verify: wrong key, changed bytes
    PLAINTEXT_MISMATCH = "plaintext_mismatch"  # decrypted, but not the archive the owner signed


class PackageRefused(ContentRefused):
    """A model (or code) archive that must not be used. `reason` says which check failed; `detail`, how."""

    def __init__(self, reason: Refusal, message: str, *, kind: str = "model package") -> None:
        super().__init__(f"{kind} refused ({reason.value}): {message}")
        self.reason = reason
        self.detail = message
