"""The signed manifest of a startup kit: the SHA-256 of each file, signed by the project's root CA.

Provisioning writes `manifest.json` last, over every file then in the kit. Loading a kit recomputes each
digest and verifies the CA's signature, so an edited config, a replaced rootCA.pem or a swapped script
stops the component from starting. Files added to the folder later are not covered.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from custos.core.digest import canonical_json, sha256_hex
from custos.core.errors import AuthenticationFailed, KitError
from custos.pki.verify import sign, verify_signature

MANIFEST_FILE = "manifest.json"
MANIFEST_VERSION = 1
MAX_KIT_FILE_BYTES = 64 * 1024


def read_kit_file(folder: Path, name: str) -> bytes:
    """The bytes of one kit file, refusing a missing, unreadable or oversized one by name."""
    path = folder / name
    if not path.is_file():
        raise KitError(f"kit at {folder} is missing {name}")
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_KIT_FILE_BYTES + 1)
    except OSError as exc:
        raise KitError(f"kit at {folder} has an unreadable {name}: {exc.strerror}") from exc
    if len(data) > MAX_KIT_FILE_BYTES:
        raise KitError(f"kit at {folder} has a {name} larger than {MAX_KIT_FILE_BYTES} bytes")
    return data


def write_manifest(folder: Path, ca_key: ec.EllipticCurvePrivateKey) -> None:
    """Sign every file now in `folder` (except the manifest itself) with the CA key."""
    files = {
        path.name: sha256_hex(read_kit_file(folder, path.name))
        for path in sorted(folder.iterdir())
        if path.is_file() and path.name != MANIFEST_FILE
    }
    body: dict[str, Any] = {"version": MANIFEST_VERSION, "files": files}
    signature = base64.b64encode(sign(ca_key, canonical_json(body))).decode()
    (folder / MANIFEST_FILE).write_text(json.dumps({**body, "signature": signature}, indent=2) + "\n")


def check_manifest(folder: Path, root: x509.Certificate) -> None:
    """Raise KitError unless the manifest is signed by `root` and every listed file matches it."""
    try:
        document = json.loads(read_kit_file(folder, MANIFEST_FILE))
        files = document["files"]
        signature = base64.b64decode(document["signature"], validate=True)
        if document["version"] != MANIFEST_VERSION or not isinstance(files, dict):
            raise ValueError("unknown manifest version or layout")
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise KitError(f"kit at {folder} has a malformed {MANIFEST_FILE}; provision the kit again") from exc
    body = {"version": MANIFEST_VERSION, "files": files}
    try:
        verify_signature(root, canonical_json(body), signature)
    except AuthenticationFailed as exc:
        raise KitError(
            f"kit at {folder} has a {MANIFEST_FILE} whose signature does not verify with its rootCA.pem; "
            "the kit was altered or mixes files from two projects"
        ) from exc
    for name, digest in sorted(files.items()):
        if not isinstance(name, str) or "/" in name or name in {"", ".", ".."} or not isinstance(digest, str):
            raise KitError(f"kit at {folder} has a malformed {MANIFEST_FILE}; provision the kit again")
        actual = sha256_hex(read_kit_file(folder, name))
        if not hmac.compare_digest(actual, digest):
            raise KitError(
                f"kit at {folder} has a {name} that differs from the one provisioned "
                f"(its digest does not match {MANIFEST_FILE}); restore it or provision the kit again"
            )
