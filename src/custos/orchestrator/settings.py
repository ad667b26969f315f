"""Orchestrator settings, passed in at start (never read from the environment at import time)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class OrchestratorSettings:
    database_url: str
    audit_path: Path
    token_ttl_s: int = 900
    challenge_ttl_s: int = 60
    long_poll_max_s: float = 25.0
    lease_margin_s: int = 60
    max_body_bytes: int = 16 << 20
