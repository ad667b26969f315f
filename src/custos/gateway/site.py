"""The datasets this gateway holds and the custodian's signed policy files for them, loaded at start.

Which policy is in force is the PolicyKeeper's business (`policies`): it verifies these files and
any newer policy relayed with a task. The file locations never leave this module's owner process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from custos.core.errors import NotFound
from custos.core.schema import DatasetSchema
from custos.core.wire import DatasetPublish, GatewayPublish, SignedPolicy
from custos.data.catalog import DatasetEntry, describe_schema, load_catalog
from custos.data.file_source import open_source
from custos.data.fingerprint import row_lineage
from custos.data.ipc import table_to_ipc_b64
from custos.data.mock import generate_mock
from custos.data.profile import profile
from custos.data.source import DataSource
from custos.gateway.policies import PolicyKeeper, read_signed_policy
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


def load_site(catalog: Path) -> dict[str, SiteDataset]:
    """Load, profile and mock every dataset; an unsigned policy file stops the start with its reason."""
    return {entry.name: load_dataset(entry) for entry in load_catalog(catalog)}


def load_dataset(entry: DatasetEntry) -> SiteDataset:
    """Open, profile and mock one dataset of the catalogue, with its signed policy file if any."""
    signed = read_signed_policy(entry.policy_path) if entry.policy_path.is_file() else None
    source = open_source(entry)
    profiled, rows = profile(source)
    mock = generate_mock(source, profiled)
    # The catalogue's licence and column notes ride in the published schema (validated here, against
    # the file's real columns).
    schema = describe_schema(entry, profiled)
    return SiteDataset(
        entry,
        source,
        schema,
        rows,
        signed,
        table_to_ipc_b64(mock),
        lineage=row_lineage(source),
        file_lineage=content_lineage(entry.path),
    )


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
