"""Orchestrator settings, passed in at start (never read from the environment at import time)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass(frozen=True)
class OrchestratorSettings:
    database_url: str
    audit_path: Path
    token_ttl_s: int = 900
    challenge_ttl_s: int = 60
    long_poll_max_s: float = 25.0
    lease_margin_s: int = 60
    max_body_bytes: int = 16 << 20
    # A blob (a round's weights, uploaded raw beside its JSON result) may be this large.
    max_blob_bytes: int = 512 << 20
    # The orchestrator's privacy.yaml (scopes and their task filters); none: no orchestrator filters.
    privacy_path: Path | None = None
    # Where blobs are kept; by default the folder `blobs` beside the audit trail (the state folder).
    blob_dir: Path | None = None
    # Which blob store keeps blobs' bytes: "folder" (blob_dir) or "database" (rows of the shared
    # database); by default the database on PostgreSQL, so that several orchestrator hosts reach every
    # blob, and the folder on SQLite, which only one host serves.
    blob_store: Literal["folder", "database"] | None = None

    # A gateway is offline once it has not been seen for a whole long poll and this margin more
    # (`offline_after_s`): a polling gateway is seen at each poll, a busy one by its own heartbeat.
    site_offline_margin_s: float = 10.0
    # With several worker processes: the folder where the workers' metrics are counted and summed
    # (prometheus_client's multiprocess mode; the parent makes it per start). None: one process.
    metrics_dir: Path | None = None

    @property
    def offline_after_s(self) -> float:
        return self.long_poll_max_s + self.site_offline_margin_s

    @property
    def blob_store_kind(self) -> Literal["folder", "database"]:
        if self.blob_store is not None:
            return self.blob_store
        return "folder" if self.database_url.startswith("sqlite") else "database"

    @property
    def blob_root(self) -> Path:
        return self.blob_dir if self.blob_dir is not None else self.audit_path.parent / "blobs"

    # A browser session opened with a password lasts this long from sign-in (it does not slide).
    session_ttl_s: int = 8 * 3600
    # Failed sign-ins a client address may have per method within the window; its next attempt gets
    # 429 until the oldest of them leaves the window (a kit signature that verifies never does).
    sign_in_max_failures: int = 5
    sign_in_window_s: int = 15 * 60
    # Failed password sign-ins an account may have from all addresses within the window; then its
    # password is refused until the window passes or its user signs in with the kit.
    password_max_failures_per_account: int = 20
    # Unexpired API tokens a user may hold at once (every size is bounded).
    api_tokens_per_user: int = 50
    # Argon2id cost (argon2-cffi's defaults, RFC 9106's low-memory profile). Raising it re-hashes each
    # password at its owner's next sign-in.
    password_time_cost: int = 3
    password_memory_kib: int = 64 * 1024
    password_parallelism: int = 4
