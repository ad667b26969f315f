"""The key broker in process: an owner deposits a key; an attested runtime gets it wrapped for its own
public key, and only it can unwrap it; every decision is on the broker's hash-chained trail."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from fastapi.testclient import TestClient
from tests.unit.keybroker.conftest import DATA_KEY, KEY_ID, Project, deposit, key_policy, release_request

from custos.attestation.wrap import unwrap_key
from custos.audit import read_events
from custos.audit.verify import verify_trail
from custos.core.errors import AuthenticationFailed
from custos.core.wire.keybroker import WrappedKey
from custos.keybroker.service import KeyBroker
from custos.keybroker.vault import KEYS_FILE, KeyVault
from custos.sdk.keybroker import signed_owner_request


def test_an_attested_runtime_gets_the_key_wrapped_for_it_alone(
    api: TestClient, broker: KeyBroker, project: Project
) -> None:
    deposit(api, project.kits["olga"])
    runtime = X25519PrivateKey.generate()
    body = release_request(api, project.kits["site-a"], project.kits["carol"], runtime)
    r = api.post("/api/v1/keys/release", json=body.model_dump(mode="json"))
    assert r.status_code == 200, r.text
    wrapped = WrappedKey.model_validate(r.json())
    assert unwrap_key(wrapped, runtime) == DATA_KEY
    with pytest.raises(AuthenticationFailed):  # anyone else who sees the answer learns nothing
        unwrap_key(wrapped, X25519PrivateKey.generate())
    actions = [e.action for e in read_events(broker_state(broker))]
    assert actions == ["key_deposit", "key_released"]
    assert verify_trail(broker_state(broker)).ok


def test_the_vault_holds_no_data_key_in_the_clear_and_rotates(
    api: TestClient, broker: KeyBroker, project: Project
) -> None:
    deposit(api, project.kits["olga"])
    stored = (broker.vault._state / KEYS_FILE).read_bytes()
    assert base64.b64encode(DATA_KEY) not in stored and DATA_KEY not in stored
    assert broker.vault.rotate(b"\x22" * 32) == 1
    assert KeyVault(broker.vault._state, b"\x22" * 32).data_key(broker.vault.get(KEY_ID)) == DATA_KEY


def test_only_a_publisher_of_the_brokers_org_may_deposit(api: TestClient, project: Project) -> None:
    body = signed_owner_request(
        project.kits["mallory"], "deposit", KEY_ID, policy=key_policy(), data_key=DATA_KEY
    )
    r = api.post("/api/v1/owner", json=body.model_dump(mode="json"))
    assert r.status_code == 403 and "not a publisher of modelco" in r.json()["detail"]
    forged = body.model_copy(update={"key_id": "key-other-0001"})  # the signature no longer covers it
    r = api.post("/api/v1/owner", json=forged.model_dump(mode="json"))
    assert r.status_code == 401


def test_a_key_id_is_never_reused(api: TestClient, project: Project) -> None:
    deposit(api, project.kits["olga"])
    body = signed_owner_request(
        project.kits["olga"], "deposit", KEY_ID, policy=key_policy(), data_key=b"\0" * 32
    )
    assert api.post("/api/v1/owner", json=body.model_dump(mode="json")).status_code == 409


def broker_state(broker: KeyBroker):  # type: ignore[no-untyped-def]
    return broker.vault._state / "audit.log"
