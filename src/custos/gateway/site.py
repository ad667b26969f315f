"""The datasets this gateway holds and the custodian's signed policy files for them, loaded at start.

Which policy is in force is the PolicyKeeper's business (`policies`): it verifies these files and
any newer policy relayed with a task. The file locations never leave this module's owner process.

A dataset's public schema and mock name no category that fewer rows hold than the minimum cell count of
the policy in force at start (`(other)` stands for them; `custos.data.profile`), and computations read
the file with those categories closed (`FileSource.closed`). A policy that raises its minimum later
changes what is published at the gateway's next start.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from custos.computations.base import policy_privacy
from custos.core.errors import NotFound
from custos.core.schema import OTHER_CATEGORY, DatasetSchema
from custos.core.wire import DatasetPublish, GatewayPublish, SignedPolicy
from custos.data.catalog import DatasetEntry, describe_schema, load_catalog
from custos.data.file_source import open_source
from custos.data.fingerprint import row_lineage
from custos.data.ipc import table_to_ipc_b64
from custos.data.mock import generate_mock
from custos.data.profile import DEFAULT_MIN_COUNT, profile
from custos.data.source import DataSource
from custos.gateway.policies import PolicyKeeper, read_signed_policy
from custos.gateway.profile_cache import CachedProfile, ProfileCache, cache_key
from custos.policy import AssetPolicy, load_policy
from custos.privacy.ledger import content_lineage


@dataclass(frozen=True)
class SiteDataset:
    entry: DatasetEntry
    source: DataSource
    schema: DatasetSchema
    row_count: int
    policy_file: SignedPolicy | None
    mock_b64: str
    # The privacy budget's key, the fingerprint of the rows (custos.data.fingerprint.row_lineage), and
    # the digest of the file's bytes (custos.privacy.ledger.content_lineage), which the ledger links to
    # it: both taken once at load.
    lineage: str | None = None
    file_lineage: str | None = None


def load_site(
    catalog: Path, policies: PolicyKeeper | None = None, *, cache: ProfileCache | None = None
) -> dict[str, SiteDataset]:
    """Load, profile and mock every dataset; an unsigned policy file stops the start with its reason.
    With `policies`, the keeper is loaded first (the custodian's files and the policies it accepted
    before), and the policy it holds in force for each dataset sets what may be published of it.
    With `cache`, a dataset whose bytes and minimum cell count are unchanged is not profiled again."""
    entries = load_catalog(catalog)
    if policies is None:
        return {entry.name: load_dataset(entry, cache=cache) for entry in entries}
    policies.load({entry.name: _policy_file(entry) for entry in entries})
    return {
        entry.name: load_dataset(
            entry, min_count=published_min_count(policies.current(entry.name)), cache=cache
        )
        for entry in entries
    }


def load_dataset(
    entry: DatasetEntry, *, min_count: int | None = None, cache: ProfileCache | None = None
) -> SiteDataset:
    """Open, profile and mock one dataset of the catalogue, with its signed policy file if any. A
    category fewer than `min_count` rows hold is published, and served, as `(other)`; by default
    `min_count` is that of the policy file (verified when the PolicyKeeper loads it), else 10. With
    `cache`, the profile, mock and fingerprint of the same bytes under the same minimum are reused."""
    signed = _policy_file(entry)
    if min_count is None:
        policy = load_policy(signed.policy_yaml, entry.policy_path.name) if signed else None
        min_count = published_min_count(policy)
    raw = open_source(entry)
    file_lineage = content_lineage(entry.path)
    key = cache_key(entry, file_lineage, min_count)
    cached = cache.get(entry, key) if cache is not None else None
    if cached is None:
        profiled, rows = profile(raw, min_count=min_count)
        # Both of the rows as stored, not as computations read them.
        cached = CachedProfile(
            profiled, rows, table_to_ipc_b64(generate_mock(raw, profiled)), row_lineage(raw)
        )
        if cache is not None:
            cache.put(entry, key, cached)
    profiled, rows = cached.schema, cached.row_count
    # The catalogue's licence and column notes ride in the published schema (validated here, against
    # the file's real columns).
    schema = describe_schema(entry, profiled)
    closed = {
        column.name: [c for c in column.categories if c != OTHER_CATEGORY]
        for column in profiled.columns
        if column.type == "string" and column.categories and OTHER_CATEGORY in column.categories
    }
    return SiteDataset(
        entry,
        raw.closed(closed) if closed else raw,
        schema,
        rows,
        signed,
        cached.mock_b64,
        lineage=cached.lineage,
        file_lineage=file_lineage,
    )


def published_min_count(policy: AssetPolicy | None) -> int:
    """The fewest rows a category needs to be published: the minimum cell count in force under
    `policy` (the larger of its top-level `min_count` and `privacy.disclosure.min_count` when it sets
    both), or the default 10 without a policy."""
    return policy_privacy(policy).disclosure.min_count if policy is not None else DEFAULT_MIN_COUNT


def _policy_file(entry: DatasetEntry) -> SignedPolicy | None:
    return read_signed_policy(entry.policy_path) if entry.policy_path.is_file() else None


def publication(site: dict[str, SiteDataset], policies: PolicyKeeper) -> GatewayPublish:
    return GatewayPublish(
        datasets=[
            DatasetPublish(
                name=name,
                description=d.entry.description,
                dataset_schema=d.schema,
                row_count=d.row_count,
                mock_arrow_b64=d.mock_b64,
                policy=policies.signed(name),
            )
            for name, d in site.items()
        ]
    )


def get_dataset(site: dict[str, SiteDataset], name: str) -> SiteDataset:
    if name not in site:
        raise NotFound(f"this gateway holds no dataset {name!r}")
    return site[name]
