"""E43: whoever holds someone's certificate cannot lock its owner out of sign-in.

Certificates are public: every code approval carries its signer's (`approvals[].signer_certificate_pem`),
and a gateway's is shown to anyone who reads its policies. Against a real orchestrator process over
HTTPS on loopback, with a real gateway process:

- an attacker sends junk signatures for a custodian's certificate (from the custodian's own address,
  as everything on loopback is); the custodian then signs in with the kit and reviews;
- the same for a gateway's certificate; the gateway, restarted so that it must sign in again, takes a
  job on its data and runs it;
- failures are limited per client address, as the orchestrator sees it: the attacker's address gets
  429 for its junk, another address is not counted with it, and `X-Forwarded-For` does not move the
  count elsewhere;
- password guesses throttle the address they come from, not the account: the user signs in with the
  right password from another address, and the guesser gets 429 even with the right one.
"""

from __future__ import annotations

import base64
import os
import ssl
from collections.abc import Iterator

import httpx
import pytest

from custos.data.synthetic import synthetic_patients
from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, UserSetup
from custos.pki.certs import certificate_pem
from custos.pki.kit import load_kit
from custos.pki.signin import CHALLENGE_PATH, TOKEN_PATH, sign_in
from custos.pki.tls import client_ssl_context
from custos.sdk import Client

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"
LOGIN_PATH = "/api/v1/auth/login"
# More than the five failures an address may have in the window.
JUNK_ATTEMPTS = 8
POLICY = {
    "dataset": "patients",
    "grants": [{"orgs": ["university"], "models": ["stats@>=1.0,<2"], "columns": ["age"]}],
    "min_count": 10,
}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """An orchestrator, gateway site-b (hospital-b, whose custodian is admin@hospital-b) and alice."""
    site = GatewaySetup(
        "site-b", "hospital-b", [DatasetSetup("patients", synthetic_patients(500, site=1, seed=3), POLICY)]
    )
    cluster = Cluster(
        tmp_path_factory.mktemp("e43-lockout"), gateways=[site], users=[UserSetup("alice", "university")]
    )
    try:
        cluster.start()
    except Exception:
        print(cluster.logs())
        raise
    try:
        yield cluster
    finally:
        cluster.stop()


def stranger(cluster: Cluster, source: str = "127.0.0.1") -> httpx.Client:
    """A client with no kit, connecting from `source`: it trusts the project's root, shows no
    certificate of its own, and knows only what is public."""
    context = ssl.create_default_context(
        cadata=certificate_pem(load_kit(cluster.kit_dir("alice")).root_certificate)
    )
    transport = httpx.HTTPTransport(verify=context, local_address=source)
    return httpx.Client(base_url=cluster.url, transport=transport, timeout=15)


def public_certificate(cluster: Cluster, name: str) -> str:
    return certificate_pem(load_kit(cluster.kit_dir(name)).certificate)


def junk_sign_in(client: httpx.Client, pem: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """Ask for a challenge for `pem` and answer it with random bytes for a signature."""
    challenge = client.post(CHALLENGE_PATH, json={"certificate_pem": pem})
    assert challenge.status_code == 200, challenge.text
    body = {
        "challenge_id": challenge.json()["challenge_id"],
        "certificate_pem": pem,
        "signature": base64.b64encode(os.urandom(72)).decode(),
    }
    return client.post(TOKEN_PATH, json=body, headers=headers)


def junk_until_refused(client: httpx.Client, pem: str) -> list[int]:
    """Junk signatures until the orchestrator answers 429 (bounded), and the statuses it gave."""
    statuses: list[int] = []
    for _ in range(JUNK_ATTEMPTS):
        statuses.append(junk_sign_in(client, pem).status_code)
        if statuses[-1] == 429:
            break
    return statuses


def test_e43_junk_signatures_do_not_lock_the_custodian_out(deployment: Cluster) -> None:
    custodian = deployment.admin_of("hospital-b")
    pem = public_certificate(deployment, custodian)
    with stranger(deployment) as attacker:
        statuses = [junk_sign_in(attacker, pem).status_code for _ in range(JUNK_ATTEMPTS)]
    assert statuses[:5] == [401] * 5
    assert set(statuses[5:]) == {429}, "the attacker's address is slowed down"

    with Client.from_kit(deployment.kit_dir(custodian), timeout=15) as client:
        assert client.me().name == custodian
        assert client.releases() == [], "the custodian reviews as usual"


def test_e43_junk_signatures_do_not_lock_a_gateway_out(deployment: Cluster) -> None:
    pem = public_certificate(deployment, "site-b")
    with stranger(deployment) as attacker:
        statuses = [junk_sign_in(attacker, pem).status_code for _ in range(JUNK_ATTEMPTS)]
    assert set(statuses) <= {401, 429}
    assert statuses[-1] == 429

    kit = load_kit(deployment.kit_dir("site-b"))
    with httpx.Client(base_url=deployment.url, verify=client_ssl_context(kit), timeout=15) as gateway:
        assert sign_in(gateway, kit).name == "site-b"

    # The gateway process, restarted, signs in again and takes the next job on its data.
    deployment.stop_gateway("site-b")
    deployment.start_gateway("site-b")
    with deployment.client("alice") as alice:
        spec = alice.create_spec("after-the-attack", "stats@1.0.0", ["site-b/patients"], ["age"])
        alice.activate_spec(spec.id, timeout=60)
        job = alice.submit_job(spec.id, {"columns": ["age"], "statistics": ["count"]})
        assert alice.wait_job(job.id, timeout=60).state == "succeeded"


def test_e43_failures_are_counted_per_client_address(deployment: Cluster) -> None:
    pem = public_certificate(deployment, "alice")
    with stranger(deployment, "127.0.0.3") as attacker:
        assert junk_until_refused(attacker, pem) == [401] * 5 + [429]
        refused = junk_sign_in(attacker, pem)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) > 0
        assert "127.0.0.3" in refused.json()["detail"]
    with stranger(deployment, "127.0.0.4") as elsewhere:
        assert junk_sign_in(elsewhere, pem).status_code == 401, "another address has its own count"


def test_e43_a_forwarded_for_header_does_not_change_the_address(deployment: Cluster) -> None:
    pem = public_certificate(deployment, "alice")
    with stranger(deployment) as attacker:
        assert junk_until_refused(attacker, pem)[-1] == 429
        # A client on loopback names another address; it is counted as what it is.
        spoofed = junk_sign_in(attacker, pem, headers={"X-Forwarded-For": "198.51.100.7"})
        assert spoofed.status_code == 429
        assert "127.0.0.1" in spoofed.json()["detail"]


def test_e43_password_guesses_slow_the_guesser_not_the_user(deployment: Cluster) -> None:
    with deployment.client("alice") as alice:
        alice.set_password(PASSWORD)
    guess = {"name": "alice", "password": "a wrong guess, twelve+"}
    with stranger(deployment, "127.0.0.5") as guesser:
        statuses = [guesser.post(LOGIN_PATH, json=guess).status_code for _ in range(6)]
        assert statuses == [401] * 5 + [429]
        assert guesser.post(LOGIN_PATH, json={"name": "alice", "password": PASSWORD}).status_code == 429, (
            "the throttled address learns nothing, not even from the right password"
        )
    with stranger(deployment, "127.0.0.6") as browser:
        r = browser.post(LOGIN_PATH, json={"name": "alice", "password": PASSWORD})
        assert r.status_code == 200, r.text
        assert r.json()["name"] == "alice"
