"""A54: the API's description is honest. A client built from the orchestrator's OpenAPI document meets
no surprise: schemathesis generates requests from the document, sends them to a real orchestrator
process over HTTPS with real tokens (a researcher, a custodian, a project admin and a gateway), and
every answer must be

- not a 5xx, whatever the document lists (a server error is a bug, not an answer),
- a status the document lists for the operation (`status_code_conformance`),
- a body the document's schema for that status describes, the shared error model for a refusal
  (`response_schema_conformance`, `content_type_conformance`),
- and a request the document allows is not refused as malformed: no 400, 413 or 422 to an input the
  document accepts (`positive_data_acceptance`).

The run is bounded and deterministic: a few examples per operation by a caller who may perform it and
one by each other caller, from a fixed seed (`derandomize`), with no shrinking; every kind of mismatch
is collected, and the test fails listing them all. Before the document stated its refusals, this
run found 98 (49 operations): undocumented 400, 401, 403 and 404, and 11 valid requests refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import CheckFunction
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from custos.core.errors import ContentRefused, PermissionDenied
from custos.core.identity import Identity
from custos.local.cluster import Cluster, GatewaySetup, UserSetup
from custos.pki.kit import load_kit
from custos.pki.signin import sign_in
from custos.pki.tls import client_ssl_context
from custos.policy.permissions import PUBLIC, check_role, permission_table

# Examples per operation, by a caller who may perform it (one by each other caller): enough to reach
# each operation's refusals, few enough that the whole run stays under a minute on two busy cores.
EXAMPLES = 4
IDENTITIES = ("alice", "admin@hospital-a", "root", "site-a")
# The checks of every answer that is not a 5xx (a 5xx is a mismatch on its own, documented or not).
CHECKS: list[CheckFunction] = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    positive_data_acceptance,
]
# The longest a fuzzed long poll may hold its connection: a real gateway waits, a fuzzer need not.
MAX_POLL_WAIT_S = 0.2


@dataclass(frozen=True)
class Deployment:
    url: str
    root_ca: Path
    tokens: dict[str, str]
    identities: list[Identity]
    document: dict[str, Any]


@pytest.fixture(scope="module")
def openapi_orchestrator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """A real orchestrator process on loopback, the tokens of its four callers, and its document."""
    cluster = Cluster(
        tmp_path_factory.mktemp("openapi"),
        gateways=[GatewaySetup("site-a", "hospital-a")],
        users=[UserSetup("alice", "university"), UserSetup("root", "operator", "project_admin")],
    )
    try:
        cluster.provision()
        cluster.start_orchestrator()  # no gateway process: the fuzzer alone speaks for site-a
        tokens: dict[str, str] = {}
        identities: list[Identity] = []
        for name in IDENTITIES:
            kit = load_kit(cluster.kit_dir(name))
            identities.append(kit.identity)
            with httpx.Client(base_url=cluster.url, verify=client_ssl_context(kit), timeout=30) as http:
                tokens[name] = sign_in(http, kit).token
                document = http.get("/openapi.json").raise_for_status().json()
        root_ca = cluster.kit_dir("alice") / "rootCA.pem"
        assert root_ca.is_file()
        yield Deployment(cluster.url, root_ca, tokens, identities, document)
    except Exception:
        print(cluster.logs())
        raise
    finally:
        cluster.stop()


def _fuzz(
    operation: schemathesis.APIOperation,
    examples: int,
    send: Callable[[schemathesis.Case], requests.Response],
    found: dict[str, str],
) -> None:
    """Send `examples` generated requests of `operation`; record each kind of mismatch in `found`
    (what went wrong -> the first request that showed it)."""

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def run(case: schemathesis.Case) -> None:
        response = send(case)
        sent = f"sent {case.formatted_path} {case.query or ''} {str(case.body)[:160]}"
        if response.status_code >= 500:
            found.setdefault(
                f"{operation.label} -> {response.status_code}: server error", f"sent {case.body}"
            )
            return
        try:
            case.validate_response(response, checks=CHECKS)
        except (Failure, FailureGroup) as exc:
            failures = exc.exceptions if isinstance(exc, FailureGroup) else [exc]
            for failure in failures:
                title = getattr(failure, "title", type(failure).__name__)
                if isinstance(failure, RejectedPositiveData) and _documents_content_refusal(case, response):
                    continue
                found.setdefault(
                    f"{operation.label} -> {response.status_code}: {title}",
                    f"{sent} -> {response.text[:160]}",
                )

    run()


def _documents_content_refusal(case: schemathesis.Case, response: requests.Response) -> bool:
    """A 422 the operation documents: the request is as described, but what it carries (an archive, a
    digest, a signature) does not verify, which no JSON Schema can state."""
    documented = case.operation.definition.raw.get("responses", {})
    return response.status_code == ContentRefused.status and str(ContentRefused.status) in documented


def _may(operation: str, identity: Identity) -> bool:
    try:
        check_role(permission_table(), operation, identity)
    except PermissionDenied:
        return False
    return True


def _examples(operation: schemathesis.APIOperation, identity: Identity, everyone: list[Identity]) -> int:
    """EXAMPLES for the first caller whose role may perform the operation; one for each other caller,
    whose answer (a refusal, or not) must be documented too. A public operation: EXAMPLES, by the
    first caller only."""
    name = permission_table().operation_for(operation.method.upper(), operation.path)
    if name == PUBLIC:
        return EXAMPLES if identity == everyone[0] else 0
    allowed = [who for who in everyone if _may(name, who)]
    return EXAMPLES if allowed and identity == allowed[0] else 1


def _bounded_poll(case: schemathesis.Case) -> None:
    """A fuzzed long poll waits at most MAX_POLL_WAIT_S (without `wait`, the route waits 20 s): the
    `wait` of the query of a GET, of the body of a POST (the poll with a heartbeat)."""
    if not case.operation.path.endswith("/tasks/next"):
        return
    if case.operation.method.upper() == "GET":
        case.query = {**(case.query or {}), "wait": _bounded(case.query or {})}
    elif isinstance(case.body, dict):
        case.body = {**case.body, "wait": _bounded(case.body)}


def _bounded(message: dict[str, Any]) -> float:
    wait = message.get("wait")
    return wait if isinstance(wait, int | float) and wait <= MAX_POLL_WAIT_S else MAX_POLL_WAIT_S


def test_a54_every_answer_is_the_one_the_document_describes(openapi_orchestrator: Deployment) -> None:
    deployment = openapi_orchestrator
    schema = schemathesis.openapi.from_dict(deployment.document)
    found: dict[str, str] = {}
    with requests.Session() as http:
        for result in schema.get_all_operations():
            operation = result.ok()
            for identity in deployment.identities:
                headers = {"Authorization": f"Bearer {deployment.tokens[identity.name]}"}

                def send(case: schemathesis.Case, headers: dict[str, str] = headers) -> requests.Response:
                    _bounded_poll(case)
                    return case.call(
                        base_url=deployment.url,
                        session=http,
                        headers=headers,
                        verify=str(deployment.root_ca),
                        timeout=30,
                    )

                examples = _examples(operation, identity, deployment.identities)
                if examples:
                    _fuzz(operation, examples, send, found)
    report = "\n".join(f"{what}\n    {example}" for what, example in sorted(found.items()))
    assert not found, f"{len(found)} mismatches between the API and its document:\n{report}"
