"""Random bearer secrets (kit tokens, session cookies, API tokens) and the hash each is stored under.

Each secret carries 256 random bits, so a fast hash is the right one (a slow password hash would buy
nothing against a search that cannot succeed). Secrets are found by looking their hash up, never by
comparing them: the time a lookup takes can only tell an attacker about hashes, which reveal nothing
of a valid secret.
"""

from __future__ import annotations

import hashlib
import secrets


def new_secret(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
