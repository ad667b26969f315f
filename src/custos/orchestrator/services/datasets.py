"""Datasets and policies as gateways publish them: metadata, schema, mock and policy text only."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from custos.core.clock import Clock
from custos.core.errors import InvalidInput, NotFound
from custos.core.refs import check_name, parse_dataset_ref
from custos.core.schema import DatasetSchema
from custos.core.wire import DatasetInfo, GatewayPublish, MockTable
from custos.orchestrator.tables import Dataset, Policy
from custos.policy import AssetPolicy, load_policy


def dataset_info(row: Dataset, policy: Policy | None) -> DatasetInfo:
    return DatasetInfo(
        id=row.id,
        gateway=row.gateway,
        name=row.name,
        description=row.description,
        dataset_schema=DatasetSchema.model_validate(row.schema_json),
        row_count=row.row_count,
        policy_yaml=policy.policy_yaml if policy else None,
    )


class DatasetService:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def publish(self, session: Session, gateway: str, body: GatewayPublish) -> None:
        """Replace everything this gateway published before with `body`."""
        now = self._clock()
        names = [check_name(d.name, "dataset") for d in body.datasets]
        if len(set(names)) != len(names):
            raise InvalidInput("a gateway published the same dataset name twice")
        for item in body.datasets:
            if item.policy_yaml is not None:
                load_policy(item.policy_yaml, source=f"policy of {gateway}/{item.name}")
        ids = [f"{gateway}/{n}" for n in names]
        session.execute(
            delete(Policy).where(Policy.dataset_id.in_(select(Dataset.id).where(Dataset.gateway == gateway)))
        )
        session.execute(delete(Dataset).where(Dataset.gateway == gateway, Dataset.id.not_in(ids)))
        for item, ds_id in zip(body.datasets, ids, strict=True):
            row = session.get(Dataset, ds_id)
            if row is None:
                row = Dataset(id=ds_id, gateway=gateway, name=item.name)
                session.add(row)
            row.description = item.description
            row.schema_json = item.dataset_schema.model_dump(mode="json")
            row.row_count = item.row_count
            row.mock_arrow_b64 = item.mock_arrow_b64
            row.updated_at = now
            session.flush()
            if item.policy_yaml is not None:
                session.add(Policy(dataset_id=ds_id, policy_yaml=item.policy_yaml, updated_at=now))

    def list(self, session: Session) -> list[DatasetInfo]:
        rows = session.execute(select(Dataset).order_by(Dataset.id)).scalars().all()
        return [dataset_info(r, session.get(Policy, r.id)) for r in rows]

    def get_row(self, session: Session, ref: str) -> Dataset:
        parsed = parse_dataset_ref(ref)
        row = session.get(Dataset, str(parsed))
        if row is None:
            known = session.execute(select(Dataset.id).order_by(Dataset.id)).scalars().all()
            raise NotFound(f"unknown dataset {ref}; known datasets: {', '.join(known) or 'none'}")
        return row

    def get(self, session: Session, ref: str) -> DatasetInfo:
        row = self.get_row(session, ref)
        return dataset_info(row, session.get(Policy, row.id))

    def mock(self, session: Session, ref: str) -> MockTable:
        row = self.get_row(session, ref)
        return MockTable(dataset=row.id, mock_arrow_b64=row.mock_arrow_b64)

    def policy(self, session: Session, dataset_id: str) -> AssetPolicy | None:
        row = session.get(Policy, dataset_id)
        return load_policy(row.policy_yaml, source=f"policy of {dataset_id}") if row else None
