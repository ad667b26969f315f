"""Datasets as gateways publish them (metadata, schema and mock only), and their signed policies.

A policy is stored only after it verifies (policy.signing.verify_policy) and only when it is newer than
the one held: a gateway restarting with an older policy file does not roll back a newer pushed one."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from custos.audit import AuditTrail
from custos.core.clock import Clock
from custos.core.errors import InvalidInput, NotFound
from custos.core.identity import Identity
from custos.core.refs import check_name, parse_dataset_ref
from custos.core.schema import DatasetSchema
from custos.core.wire import CUSTOM_MODEL, DatasetInfo, GatewayPublish, MockTable, SignedPolicy
from custos.orchestrator.services.trust import Trust
from custos.orchestrator.tables import Dataset, Gateway, Model, Policy
from custos.pki.certs import identity_of, load_certificate_pem
from custos.policy import AssetPolicy, load_policy
from custos.policy.checks import policy_problems
from custos.policy.permissions import Resource, check_perform, permission_table
from custos.policy.signing import check_newer, verify_policy

CUSTOM_MODEL_NAME = CUSTOM_MODEL.partition("@")[0]


def dataset_info(row: Dataset, policy: Policy | None, owner_org: str = "") -> DatasetInfo:
    return DatasetInfo(
        id=row.id,
        gateway=row.gateway,
        name=row.name,
        description=row.description,
        dataset_schema=DatasetSchema.model_validate(row.schema_json),
        row_count=row.row_count,
        policy_yaml=policy.policy_yaml if policy else None,
        policy_signer=policy.signer if policy else None,
        policy_issued_at=policy.issued_at if policy else None,
        owner_org=owner_org,
    )


class DatasetService:
    def __init__(self, clock: Clock, trust: Trust, audit: AuditTrail) -> None:
        self._clock = clock
        self._trust = trust
        self._audit = audit

    def publish(self, session: Session, gateway: str, body: GatewayPublish) -> None:
        """Replace everything this gateway published before with `body`; keep newer policies."""
        now = self._clock()
        names = [check_name(d.name, "dataset") for d in body.datasets]
        if len(set(names)) != len(names):
            raise InvalidInput("a gateway published the same dataset name twice")
        ids = [f"{gateway}/{n}" for n in names]
        gone = select(Dataset.id).where(Dataset.gateway == gateway, Dataset.id.not_in(ids))
        session.execute(delete(Policy).where(Policy.dataset_id.in_(gone)))
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
            if item.policy is not None:
                current = self.signed_policy(session, ds_id)
                if current is None or item.policy.issued_at > current.issued_at:
                    self._store(session, ds_id, item.policy)

    def put_policy(self, session: Session, caller: Identity, ref: str, signed: SignedPolicy) -> DatasetInfo:
        """An org admin's signed policy for `ref`, verified, and newer than the one held."""
        row = self.get_row(session, ref)
        check_perform(permission_table(), "policy.write", caller, Resource(None, self._org_of(session, row)))
        policy = self._store(session, row.id, signed, pushed=True)
        self._audit.append(
            user=caller.name,
            action="policy_changed",
            message=f"{row.id}: signed by {policy.signer}, issued {signed.issued_at.isoformat()}",
        )
        return dataset_info(row, policy, self._org_of(session, row))

    @staticmethod
    def _check_grants(session: Session, row: Dataset, signed: SignedPolicy) -> None:
        """Refuse a pushed policy whose grants name a column the dataset lacks or a model the registry
        does not hold (`custos policy sign` warns of the same)."""
        policy = load_policy(signed.policy_yaml, f"the policy for {row.id}")
        columns = [c.name for c in DatasetSchema.model_validate(row.schema_json).columns]
        models = {*session.execute(select(Model.name)).scalars(), CUSTOM_MODEL_NAME}
        problems = policy_problems(policy, row.id, columns, models)
        if problems:
            raise InvalidInput(f"the policy for {row.id} is refused: {'; '.join(problems)}")

    def _org_of(self, session: Session, row: Dataset) -> str:
        gateway = session.get(Gateway, row.gateway)
        assert gateway is not None  # a dataset is published by a signed-in gateway
        return gateway.org

    def _store(
        self, session: Session, dataset_id: str, signed: SignedPolicy, *, pushed: bool = False
    ) -> Policy:
        """Store a verified policy. One `pushed` by an org admin must also be newer than the one held
        and grant only columns and models that exist."""
        row = session.get(Dataset, dataset_id)
        assert row is not None
        verify_policy(
            signed,
            dataset=dataset_id,
            dataset_org=self._org_of(session, row),
            check_certificate=lambda cert: self._trust.verify(session, cert),
        )
        if pushed:
            check_newer(signed, self.signed_policy(session, dataset_id))
            self._check_grants(session, row, signed)
        policy = session.get(Policy, dataset_id)
        if policy is None:
            policy = Policy(dataset_id=dataset_id)
            session.add(policy)
        policy.policy_yaml = signed.policy_yaml
        policy.signed_json = signed.model_dump(mode="json")
        policy.issued_at = signed.issued_at
        policy.signer = _signer_name(signed)
        policy.updated_at = self._clock()
        session.flush()
        return policy

    def search(self, session: Session, text: str) -> list[DatasetInfo]:
        """The datasets matching every word of `text`, best match first (see `search_score`)."""
        words = search_words(text)
        scored = [(search_score(info, words), info) for info in self.list(session)]
        return [info for score, info in sorted(scored, key=lambda s: (-s[0], s[1].id)) if score > 0]

    def list(self, session: Session) -> list[DatasetInfo]:
        rows = session.execute(select(Dataset).order_by(Dataset.id)).scalars().all()
        return [dataset_info(r, session.get(Policy, r.id), self._org_of(session, r)) for r in rows]

    def get_row(self, session: Session, ref: str) -> Dataset:
        parsed = parse_dataset_ref(ref)
        row = session.get(Dataset, str(parsed))
        if row is None:
            known = session.execute(select(Dataset.id).order_by(Dataset.id)).scalars().all()
            raise NotFound(f"unknown dataset {ref}; known datasets: {', '.join(known) or 'none'}")
        return row

    def get(self, session: Session, ref: str) -> DatasetInfo:
        row = self.get_row(session, ref)
        return dataset_info(row, session.get(Policy, row.id), self._org_of(session, row))

    def mock(self, session: Session, ref: str) -> MockTable:
        row = self.get_row(session, ref)
        return MockTable(dataset=row.id, mock_arrow_b64=row.mock_arrow_b64)

    def policy(self, session: Session, dataset_id: str) -> AssetPolicy | None:
        row = session.get(Policy, dataset_id)
        return load_policy(row.policy_yaml, source=f"policy of {dataset_id}") if row else None

    def signed_policy(self, session: Session, dataset_id: str) -> SignedPolicy | None:
        row = session.get(Policy, dataset_id)
        return SignedPolicy.model_validate(row.signed_json) if row else None


# How much a word found in each field counts: a dataset named for the word beats one that mentions it.
SEARCH_WEIGHTS = {
    "name": 8,
    "owner_org": 6,
    "gateway": 6,
    "column": 4,
    "description": 3,
    "column_note": 2,
    "licence": 1,
}
MAX_SEARCH_CHARS = 200


def search_words(text: str) -> list[str]:
    """The lower-cased words of a search; refuses an empty or over-long search with what is accepted."""
    if len(text) > MAX_SEARCH_CHARS:
        raise InvalidInput(f"a dataset search has at most {MAX_SEARCH_CHARS} characters, not {len(text)}")
    words = text.casefold().split()
    if not words:
        raise InvalidInput("a dataset search needs at least one word, e.g. 'diabetes' or 'age years'")
    return words


def search_score(info: DatasetInfo, words: list[str]) -> int:
    """0 unless every word occurs (case-insensitively) in some field; else the sum, over the words, of
    the weight of the best field each occurs in, doubled when the word is the whole dataset name."""
    columns = info.dataset_schema.columns
    fields = {
        "name": [info.name],
        "owner_org": [info.owner_org],
        "gateway": [info.gateway],
        "column": [c.name for c in columns],
        "description": [info.description],
        "column_note": [f"{c.description} {c.unit}" for c in columns],
        "licence": [info.dataset_schema.licence],
    }
    folded = {key: [v.casefold() for v in values] for key, values in fields.items()}
    total = 0
    for word in words:
        best = max(
            (SEARCH_WEIGHTS[key] for key, values in folded.items() if any(word in v for v in values)),
            default=0,
        )
        if best == 0:
            return 0
        total += best * 2 if word == info.name.casefold() else best
    return total


def _signer_name(signed: SignedPolicy) -> str:
    return identity_of(load_certificate_pem(signed.signer_certificate_pem)).name
