"""The Nitro document verifier against synthetic documents (a test root pinned in place of AWS's),
well-formed and malformed (A8): each refusal names its reason and nothing raises but ReleaseRefused."""

from __future__ import annotations

from datetime import timedelta

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from tests.unit.attestation.nitro_documents import PCR0, EnclavePki, document, payload

from custos.attestation.nitro import NitroVerifier
from custos.attestation.software import SoftwareVerifier
from custos.attestation.verifier import Refused, ReleaseRefused

NONCE, PUBLIC = b"n" * 32, b"k" * 32


@pytest.fixture(scope="module")
def pki() -> EnclavePki:
    return EnclavePki()


def verifier(pki: EnclavePki) -> NitroVerifier:
    return NitroVerifier(SoftwareVerifier(lambda cert: pytest.fail("not used")), pki.root)


def refused(pki: EnclavePki, data: bytes) -> Refused:
    with pytest.raises(ReleaseRefused) as refusal:
        verifier(pki).check_document(data, pki.now)
    return refusal.value.reason


def test_a_well_formed_document_verifies(pki: EnclavePki) -> None:
    checked = verifier(pki).check_document(
        document(pki, payload(pki, nonce=NONCE, public_key=PUBLIC)), pki.now
    )
    assert checked.pcrs[0] == PCR0 and checked.nonce == NONCE and checked.public_key == PUBLIC
    # untagged COSE_Sign1 is accepted too
    verifier(pki).check_document(
        document(pki, payload(pki, nonce=NONCE, public_key=PUBLIC), tag=None), pki.now
    )


def test_a8_malformed_documents_are_refused_without_a_crash(pki: EnclavePki) -> None:
    good = payload(pki, nonce=NONCE, public_key=PUBLIC)
    assert refused(pki, document(pki, good, tag=98)) is Refused.BAD_EVIDENCE  # wrong tag
    assert refused(pki, document(pki, good | {"certificate": None})) is Refused.BAD_EVIDENCE  # null field
    assert refused(pki, document(pki, good | {"cabundle": None})) is Refused.BAD_EVIDENCE
    assert (
        refused(pki, document(pki, good | {"pcrs": {0: b"\x01" * 33}})) is Refused.BAD_EVIDENCE
    )  # 33-byte PCR
    assert (
        refused(pki, document(pki, good | {"user_data": b"u" * 2048})) is Refused.BAD_EVIDENCE
    )  # 2 KB user_data
    assert refused(pki, document(pki, good | {"timestamp": None})) is Refused.BAD_EVIDENCE
    assert refused(pki, b"\xff\x00garbage") is Refused.BAD_EVIDENCE
    assert refused(pki, document(pki, good)[:-30]) is Refused.BAD_EVIDENCE  # truncated
    assert refused(pki, cbor2.dumps([b"", {}, b"", b""])) is Refused.BAD_EVIDENCE
    assert refused(pki, b"\x9f" * 5000) is Refused.BAD_EVIDENCE  # deep nesting


def test_e42_a_debug_enclave_is_refused(pki: EnclavePki) -> None:
    zeros = {i: bytes(48) for i in range(3)}
    assert (
        refused(pki, document(pki, payload(pki, nonce=NONCE, public_key=PUBLIC, pcrs=zeros)))
        is Refused.DEBUG_ENCLAVE
    )


def test_e42_a_chain_to_another_root_is_refused(pki: EnclavePki) -> None:
    other = EnclavePki()
    # a document whose own bundle names its own root: the pinned root is the only one that counts
    assert (
        refused(pki, document(other, payload(other, nonce=NONCE, public_key=PUBLIC)))
        is Refused.UNTRUSTED_ROOT
    )
    # the pinned root in front of another chain: the intermediate is not signed by it
    spliced = payload(other, nonce=NONCE, public_key=PUBLIC)
    spliced["cabundle"] = [
        payload(pki, nonce=NONCE, public_key=PUBLIC)["cabundle"][0],
        spliced["cabundle"][1],
    ]
    assert refused(pki, document(other, spliced)) is Refused.UNTRUSTED_ROOT


def test_e42_a_forged_signature_and_a_stale_document_are_refused(pki: EnclavePki) -> None:
    body = payload(pki, nonce=NONCE, public_key=PUBLIC)
    assert (
        refused(pki, document(pki, body, key=ec.generate_private_key(ec.SECP384R1()))) is Refused.BAD_EVIDENCE
    )
    stale = body | {"timestamp": int((pki.now - timedelta(minutes=10)).timestamp() * 1000)}
    assert refused(pki, document(pki, stale)) is Refused.STALE
