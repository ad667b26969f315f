"""The portal: the orchestrator's pages for people in a browser (Jinja2 templates, htmx, no build).

Each page is a route in the permission table like every API route; pages are signed in by the session
cookie only, and their forms carry a CSRF token (`security`)."""

from custos.orchestrator.portal.errors import page_error
from custos.orchestrator.portal.pages_audit import router as audit_router
from custos.orchestrator.portal.pages_budget import router as budget_router
from custos.orchestrator.portal.pages_code import router as code_router
from custos.orchestrator.portal.pages_datasets import router as datasets_router
from custos.orchestrator.portal.pages_held_files import router as held_files_router
from custos.orchestrator.portal.pages_home import router as home_router
from custos.orchestrator.portal.pages_jobs import router as jobs_router
from custos.orchestrator.portal.pages_releases import router as releases_router
from custos.orchestrator.portal.security import SecurityHeaders
from custos.orchestrator.portal.static_files import router as static_router

ROUTERS = (
    static_router,
    home_router,
    datasets_router,
    jobs_router,
    code_router,
    releases_router,
    held_files_router,
    audit_router,
    budget_router,
)

__all__ = ["ROUTERS", "SecurityHeaders", "page_error"]
