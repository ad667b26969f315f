"""The broker's data keys at rest: `STATE/keys.json`, each data key sealed with AES-256-GCM under the
vault key (a 32-byte key file, or a key derived from a passphrase with scrypt and the salt in
`STATE/vault.salt`), its key id as associated data. The file is rewritten whole, under an exclusive
lock, by one atomic rename; the broker reads it on every request, so `custos keybroker policy set`,
`revoke` and `rotate` take effect at once.

Rotation (`rotate`): every data key is unsealed with the old vault key and sealed again with the new
one in one rewrite; then the old key file can be destroyed.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from pydantic import BaseModel, ConfigDict

from custos.core.errors import Conflict, InvalidInput, KitError, NotFound
from custos.core.wire.keybroker import KeyPolicy, KeyPublic

KEYS_FILE = "keys.json"
SALT_FILE = "vault.salt"


class VaultEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key_id: str
    owner: str
    policy: KeyPolicy
    sealed_key: str
    revoked: str | None = None

    def public(self) -> KeyPublic:
        return KeyPublic(key_id=self.key_id, policy=self.policy, owner=self.owner, revoked=self.revoked)


def load_key_file(path: Path) -> bytes:
    """A vault key file: 32 random bytes, readable by its owner only."""
    if not path.is_file():
        raise KitError(f"no vault key file at {path}; create one with `custos keybroker init-key {path}`")
    if path.stat().st_mode & 0o077:
        raise KitError(f"{path} is readable by others; run `chmod 600 {path}`")
    key = path.read_bytes()
    if len(key) != 32:
        raise KitError(f"{path} holds {len(key)} bytes; a vault key file holds 32")
    return key


def create_key_file(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(AESGCM.generate_key(bit_length=256))


def passphrase_key(state: Path, passphrase: str) -> bytes:
    salt_path = state / SALT_FILE
    if not salt_path.exists():
        salt_path.write_bytes(os.urandom(16))
    return Scrypt(salt=salt_path.read_bytes(), length=32, n=2**15, r=8, p=1).derive(passphrase.encode())


class KeyVault:
    def __init__(self, state: Path, vault_key: bytes) -> None:
        self._state = state
        self._path = state / KEYS_FILE
        self._key = vault_key

    def put(self, key_id: str, owner: str, data_key: bytes, policy: KeyPolicy) -> VaultEntry:
        """Store a new data key. A key id is used once: another deposit under it is refused."""
        if len(data_key) != 32:
            raise InvalidInput("a data key has 32 bytes (AES-256)")
        with self._locked() as entries:
            if key_id in entries:
                raise Conflict(f"key {key_id} is held already; a key id is never reused")
            entry = VaultEntry(
                key_id=key_id, owner=owner, policy=policy, sealed_key=self._seal(key_id, data_key)
            )
            entries[key_id] = entry
        return entry

    def get(self, key_id: str) -> VaultEntry:
        entry = self._read().get(key_id)
        if entry is None:
            raise NotFound(f"this broker holds no key {key_id}")
        return entry

    def entries(self) -> list[VaultEntry]:
        return sorted(self._read().values(), key=lambda e: e.key_id)

    def data_key(self, entry: VaultEntry) -> bytes:
        raw = base64.b64decode(entry.sealed_key)
        try:
            return AESGCM(self._key).decrypt(raw[:12], raw[12:], _aad(entry.key_id))
        except InvalidTag as exc:
            raise KitError(f"key {entry.key_id} does not unseal with this vault key") from exc

    def set_policy(self, key_id: str, policy: KeyPolicy) -> VaultEntry:
        return self._update(key_id, policy=policy)

    def revoke(self, key_id: str, reason: str) -> VaultEntry:
        return self._update(key_id, revoked=reason or "revoked by its owner")

    def rotate(self, new_key: bytes) -> int:
        """Seal every data key under `new_key` instead; returns how many. Use the new key from now on."""
        with self._locked() as entries:
            for key_id, entry in list(entries.items()):
                entries[key_id] = entry.model_copy(
                    update={"sealed_key": _seal_with(new_key, key_id, self.data_key(entry))}
                )
            self._key = new_key
            return len(entries)

    def _update(self, key_id: str, **changes: object) -> VaultEntry:
        with self._locked() as entries:
            if key_id not in entries:
                raise NotFound(f"this broker holds no key {key_id}")
            entries[key_id] = entry = entries[key_id].model_copy(update=changes)
        return entry

    def _seal(self, key_id: str, data_key: bytes) -> str:
        return _seal_with(self._key, key_id, data_key)

    def _read(self) -> dict[str, VaultEntry]:
        if not self._path.is_file():
            return {}
        data = json.loads(self._path.read_text(encoding="utf-8"))
        return {k: VaultEntry.model_validate(v) for k, v in data.items()}

    @contextmanager
    def _locked(self) -> Iterator[dict[str, VaultEntry]]:
        self._state.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self._state / (KEYS_FILE + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            entries = self._read()
            yield entries
            text = json.dumps({k: v.model_dump(mode="json") for k, v in sorted(entries.items())}, indent=1)
            partial = self._path.with_suffix(".partial")
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, self._path)


def _aad(key_id: str) -> bytes:
    return b"custos-vault-v1\n" + key_id.encode()


def _seal_with(vault_key: bytes, key_id: str, data_key: bytes) -> str:
    nonce = os.urandom(12)
    return base64.b64encode(nonce + AESGCM(vault_key).encrypt(nonce, data_key, _aad(key_id))).decode("ascii")
