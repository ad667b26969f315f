"""The dataset catalogue with search, and a dataset's page: schema and public bounds, the mock rows,
the human-readable policy and its signature status, and what the signed-in user may do with it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from custos.core.errors import CustosError
from custos.orchestrator.api.context import PAGE_TAG, PageCallerDep, ServicesDep
from custos.orchestrator.portal.access import allowed_for
from custos.orchestrator.portal.render import page
from custos.policy.signing import verify_policy

router = APIRouter(tags=[PAGE_TAG], include_in_schema=False)
MOCK_ROWS_SHOWN = 20


@dataclass(frozen=True)
class SignatureStatus:
    verified: bool
    text: str


@router.get("/datasets", response_class=HTMLResponse)
def catalogue(
    request: Request,
    caller: PageCallerDep,
    services: ServicesDep,
    q: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    text = q.strip()
    datasets = services.run(
        lambda s: services.datasets.search(s, text) if text else services.datasets.list(s)
    )
    return page(request, "datasets.html", caller, datasets=datasets, q=text)


@router.get("/datasets/{gateway}/{name}", response_class=HTMLResponse)
def dataset_page(
    gateway: str, name: str, request: Request, caller: PageCallerDep, services: ServicesDep
) -> HTMLResponse:
    ref = f"{gateway}/{name}"
    who = caller.identity

    def gather(s: Session) -> dict[str, Any]:
        (info,) = services.sites.with_health(s, [services.datasets.get(s, ref)])
        signed = services.datasets.signed_policy(s, info.id)
        status: SignatureStatus | None = None
        if signed is not None:
            try:
                verify_policy(
                    signed,
                    dataset=info.id,
                    dataset_org=info.owner_org,
                    check_certificate=lambda cert: services.trust.verify(s, cert),
                )
                status = SignatureStatus(
                    True,
                    f"signed by {info.policy_signer} on {signed.issued_at:%Y-%m-%d %H:%M UTC}; "
                    "the signature verifies against the project's root CA",
                )
            except CustosError as exc:
                status = SignatureStatus(False, f"the signature does not verify: {exc.message}")
        policy = services.datasets.policy(s, info.id)
        allowed = allowed_for(who, policy, info.id, services.budget.list(s, who))
        # Imported here: pyarrow is loaded when a dataset's page is first shown, not at the start.
        from custos.data.ipc import table_from_ipc_b64

        mock = table_from_ipc_b64(services.datasets.mock(s, ref).mock_arrow_b64)
        return {
            "info": info,
            "signature": status,
            "allowed": allowed,
            "mock_columns": mock.column_names,
            "mock_rows": mock.slice(0, MOCK_ROWS_SHOWN).to_pylist(),
            "mock_total": mock.num_rows,
        }

    return page(request, "dataset.html", caller, **services.run(gather))
