"""The signed policies this gateway enforces, one per dataset, and where they come from.

A policy reaches the gateway from the custodian's own signed file (named in DATASETS.yaml) or with a
task, relayed by the orchestrator from an org admin's push. Either way it is used only after
`verify_policy` passes with this gateway's root CA, its org and the revocation list it holds, and only
when it is newer than the one in use: the orchestrator can neither alter a policy nor roll one back.
Accepted policies are kept in the state folder, so a restart does not forget a newer one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from custos.core.errors import InvalidInput
from custos.core.wire import SignedPolicy
from custos.policy import AssetPolicy
from custos.policy.signing import CertificateCheck, PolicyRefused, check_newer, verify_policy

log = logging.getLogger("custos.gateway")


def read_signed_policy(path: Path) -> SignedPolicy:
    """A signed policy file as `custos policy sign` writes it; a plain YAML policy is refused."""
    text = path.read_text(encoding="utf-8")
    try:
        return SignedPolicy.model_validate_json(text)
    except ValidationError as exc:
        raise InvalidInput(
            f"policy file {path.name} is not a signed policy; an org admin of this site's org signs it "
            f"with `custos policy sign {path.name} --kit ADMIN_KIT --dataset GATEWAY/DATASET`"
        ) from exc


def is_older(signed: SignedPolicy, current: SignedPolicy | None) -> bool:
    """True when a policy in force is newer than `signed`: a relay lagging behind, not a forgery."""
    return current is not None and signed.issued_at < current.issued_at


class PolicyKeeper:
    """Policies in force, by dataset name at this gateway."""

    def __init__(
        self,
        gateway: str,
        org: str,
        state_dir: Path,
        check_certificate: CertificateCheck,
    ) -> None:
        self._gateway = gateway
        self._org = org
        self._folder = state_dir / "policies"
        self._check = check_certificate
        self._signed: dict[str, SignedPolicy] = {}
        self._policies: dict[str, AssetPolicy] = {}

    def load(self, local: Mapping[str, SignedPolicy | None]) -> None:
        """Start from the custodian's files and the policies accepted before; the newest of each wins.
        A custodian's file that does not verify stops the start; a stored one that no longer verifies
        (its signer was revoked since) is dropped with a warning."""
        for name, signed in local.items():
            if signed is not None:
                self.offer(name, signed, persist=False)
        if self._folder.is_dir():
            for path in sorted(self._folder.glob("*.json")):
                name = path.stem
                try:
                    self.offer(name, read_signed_policy(path), persist=False)
                except (PolicyRefused, InvalidInput) as exc:
                    log.warning("stored policy %s is no longer used: %s", path.name, exc)

    def offer(self, dataset: str, signed: SignedPolicy, *, persist: bool = True) -> AssetPolicy:
        """Verify `signed` and use it if it is newer than the policy in force; return the policy in force.
        Raises PolicyRefused naming the reason for a policy that does not verify or is older."""
        current = self._signed.get(dataset)
        if current == signed:
            return self._policies[dataset]
        ref = f"{self._gateway}/{dataset}"
        policy = verify_policy(signed, dataset=ref, dataset_org=self._org, check_certificate=self._check)
        check_newer(signed, current)
        self._signed[dataset], self._policies[dataset] = signed, policy
        if persist:
            self._persist(dataset, signed)
        log.info("policy for %s in force: issued %s", ref, signed.issued_at.isoformat())
        return policy

    @property
    def check_certificate(self) -> CertificateCheck:
        """How this keeper verifies a signer: the gateway's root, clock and revocation list."""
        return self._check

    def current(self, dataset: str) -> AssetPolicy | None:
        return self._policies.get(dataset)

    def signed(self, dataset: str) -> SignedPolicy | None:
        return self._signed.get(dataset)

    def _persist(self, dataset: str, signed: SignedPolicy) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        path = self._folder / f"{dataset}.json"
        partial = path.with_suffix(".json.partial")
        partial.write_text(signed.model_dump_json(), encoding="utf-8")
        os.replace(partial, path)
