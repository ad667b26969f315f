"""Pairwise masking: the masks cancel in the sum over every site and nowhere else, and a gateway masks
only with peers whose keys the project's CA vouches for, for this job."""

from __future__ import annotations

import base64
from functools import partial
from typing import Any

import numpy as np
import pytest
from cryptography import x509

from custos.core.clock import utcnow
from custos.core.errors import AuthenticationFailed, InvalidInput
from custos.core.identity import Identity, Role
from custos.pki.certs import create_root_ca, generate_key, issue_certificate
from custos.pki.verify import verify_certificate
from custos.privacy.secure_sum import MaskKeys, SiteKey, unmask_sum

SITES = ["site-a/cohort", "site-b/cohort", "site-c/cohort"]
ROUND = {"phase": "quantiles", "round": 1, "searches": [{"id": 0, "lo": -5, "hi": 9}]}
ROOT, ROOT_KEY = create_root_ca("project")


def gateway_keys(name: str, role: Role = Role.GATEWAY, root: Any = None) -> MaskKeys:
    ca, ca_key = root or (ROOT, ROOT_KEY)
    key = generate_key()
    cert = issue_certificate(ca, ca_key, Identity(name, f"org-of-{name}", role), key.public_key())
    return MaskKeys(cert, key, partial(check, ROOT))


def check(root: x509.Certificate, cert: x509.Certificate) -> Identity:
    return verify_certificate(cert, root, utcnow())


@pytest.fixture(scope="module")
def keys() -> dict[str, MaskKeys]:
    return {site: gateway_keys(site.split("/")[0]) for site in SITES}


def site_keys(keys: dict[str, MaskKeys], job: str = "job_1") -> dict[str, SiteKey]:
    return {site: keys[site].for_site(job, site) for site in SITES}


def words(masked: str) -> list[int]:
    return [int(v) for v in np.frombuffer(base64.b64decode(masked), dtype="<u8")]


def test_masks_cancel_in_the_sum_over_every_site_and_hide_each_site(keys: dict[str, MaskKeys]) -> None:
    job = site_keys(keys)
    peers = {site: key.announcement() for site, key in job.items()}
    counts = {"site-a/cohort": [0, 1, 2, 9], "site-b/cohort": [0, 0, 3, 3], "site-c/cohort": [1, 1, 1, 40]}

    masked = {site: job[site].masker(peers, ROUND).mask("search 0", counts[site]) for site in SITES}

    assert unmask_sum(masked.values(), 4) == [1, 2, 6, 52]
    for site in SITES:
        assert all(w != c and w >= 1 << 8 for w, c in zip(words(masked[site]), counts[site], strict=True))
    # Any two sites' vectors still carry the third's masks: no partial sum comes out.
    partial_sum = unmask_sum([masked["site-a/cohort"], masked["site-b/cohort"]], 4)
    assert all(v > 1 << 32 for v in partial_sum)


def test_masks_are_fresh_for_another_round_input_label_or_job(keys: dict[str, MaskKeys]) -> None:
    job = site_keys(keys)
    peers = {site: key.announcement() for site, key in job.items()}
    site = job["site-a/cohort"]
    first = site.masker(peers, ROUND).mask("search 0", [3, 3])

    assert site.masker(peers, ROUND).mask("search 0", [3, 3]) == first  # a retry sends the same
    assert site.masker(peers, {**ROUND, "round": 2}).mask("search 0", [3, 3]) != first
    assert site.masker(peers, ROUND).mask("search 1", [3, 3]) != first
    other = site_keys(keys, "job_2")
    other_peers = {s: k.announcement() for s, k in other.items()}
    assert other["site-a/cohort"].public_key != site.public_key
    assert other["site-a/cohort"].masker(other_peers, ROUND).mask("search 0", [3, 3]) != first


def test_a_job_of_one_site_has_nothing_to_mask_with(keys: dict[str, MaskKeys]) -> None:
    alone = keys["site-a/cohort"].for_site("job_1", "site-a/cohort")
    masked = alone.masker({"site-a/cohort": alone.announcement()}, ROUND).mask("search 0", [0, 4])
    assert words(masked) == [0, 4]


def refusal(keys: dict[str, MaskKeys], peers: dict[str, Any]) -> str:
    with pytest.raises((InvalidInput, AuthenticationFailed)) as refused:
        keys["site-a/cohort"].for_site("job_1", "site-a/cohort").masker(peers, ROUND)
    return str(refused.value)


def test_a_gateway_refuses_peers_the_project_does_not_vouch_for(keys: dict[str, MaskKeys]) -> None:
    job = site_keys(keys)
    good = {site: key.announcement() for site, key in job.items()}

    # The orchestrator cannot stand in a pair: a key of its own, under a certificate of another CA...
    foreign = gateway_keys("site-b", root=create_root_ca("elsewhere")).for_site("job_1", "site-b/cohort")
    assert "not signed by this project's CA" in refusal(
        keys, {**good, "site-b/cohort": foreign.announcement()}
    )
    # ...or under a certificate of the project that is not site-b's gateway.
    for impostor in (gateway_keys("site-x"), gateway_keys("bob", Role.LEAD_RESEARCHER)):
        announced = impostor.for_site("job_1", "site-b/cohort").announcement()
        assert "not of that site's gateway" in refusal(keys, {**good, "site-b/cohort": announced})
    # Nor swap the key under site-b's own certificate, or replay site-b's key of another job.
    swapped = {**good["site-b/cohort"], "public_key": good["site-c/cohort"]["public_key"]}
    assert "signature does not match" in refusal(keys, {**good, "site-b/cohort": swapped})
    replayed = keys["site-b/cohort"].for_site("job_0", "site-b/cohort").announcement()
    assert "signature does not match" in refusal(keys, {**good, "site-b/cohort": replayed})
    # A key filed under another site, a site left out, or another key for this site are refused too.
    assert "is for site-c/cohort" in refusal(keys, {**good, "site-b/cohort": good["site-c/cohort"]})
    assert "do not include this site" in refusal(keys, {s: v for s, v in good.items() if s != SITES[0]})
    other_key = keys["site-a/cohort"].for_site("job_0", "site-a/cohort").announcement()
    assert "malformed" in refusal(keys, {**good, "site-b/cohort": {"site": "site-b/cohort"}})
    with pytest.raises(AuthenticationFailed, match="signature does not match"):
        job["site-a/cohort"].masker({**good, "site-a/cohort": other_key}, ROUND)


def test_unmask_refuses_a_vector_of_another_length() -> None:
    with pytest.raises(InvalidInput, match="has 2 words; 3 expected"):
        unmask_sum([base64.b64encode(bytes(16)).decode()], 3)
    with pytest.raises(InvalidInput, match="not base64"):
        unmask_sum(["not base64!"], 1)
