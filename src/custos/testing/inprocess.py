"""An orchestrator in process, for API tests that need no TLS and no gateway processes: provisioned
kits for a list of people, the app behind Starlette's test client, and bearer headers from a real
kit sign-in (proof of key possession, as over HTTPS)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from custos.orchestrator.app import create_app
from custos.orchestrator.settings import OrchestratorSettings
from custos.pki.kit import Kit, load_kit
from custos.pki.project import ProjectSpec
from custos.pki.provision import provision
from custos.pki.signin import sign_in

# (name, "user" | "gateway", org, role or None for a gateway)
Person = tuple[str, str, str, str | None]


def provision_people(folder: Path, project: str, people: Sequence[Person]) -> dict[str, Kit]:
    """Provision `project` into `folder` (an orchestrator plus `people`) and load every kit by name."""
    participants = [{"name": n, "type": t, "org": o, **({"role": r} if r else {})} for n, t, o, r in people]
    provision(ProjectSpec.model_validate({"name": project, "participants": participants}), folder)
    return {p.name: load_kit(p) for p in folder.iterdir() if (p / "config.json").exists()}


@contextmanager
def orchestrator_in_process(kits: dict[str, Kit], state: Path, **settings: Any) -> Iterator[TestClient]:
    """The orchestrator's app on an SQLite database and an audit trail in `state`."""
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{state / 'o.db'}",
        "audit_path": state / "audit.log",
        **settings,
    }
    app = create_app(OrchestratorSettings(**values), kits["orchestrator"].root_certificate)
    with TestClient(app) as client:
        yield client


def bearer(api: TestClient, kit: Kit) -> dict[str, str]:
    """The Authorization header of `kit`'s holder, signed in with the kit's key."""
    return {"Authorization": f"Bearer {sign_in(api, kit).token}"}
