"""Routes of the model registry: list and show entries, publish a signed package, fetch its archive."""

from __future__ import annotations

from fastapi import APIRouter

from custos.core.errors import Conflict, ContentRefused
from custos.core.wire import ModelArchive, ModelDetail, ModelPublic, ModelPublish
from custos.orchestrator.api.context import CallerDep, NamePath, ServicesDep, UserDep, VersionPath
from custos.orchestrator.api.responses import refusals

router = APIRouter(prefix="/api/v1", tags=["models"])


@router.get("/models")
def list_models(_: CallerDep, services: ServicesDep) -> list[ModelPublic]:
    return services.run(services.models.list)


@router.post("/models", status_code=201, responses=refusals(ContentRefused, Conflict))
def publish_model(body: ModelPublish, caller: UserDep, services: ServicesDep) -> ModelDetail:
    """Store a package its publisher signed; refused unless the archive and signature verify."""
    return services.run(lambda s: services.models.publish(s, caller.identity, body))


@router.get("/models/{name}/{version}")
def get_model(name: NamePath, version: VersionPath, _: CallerDep, services: ServicesDep) -> ModelDetail:
    return services.run(lambda s: services.models.get(s, f"{name}@{version}"))


@router.get("/models/{name}/{version}/archive")
def get_model_archive(
    name: NamePath, version: VersionPath, _: CallerDep, services: ServicesDep
) -> ModelArchive:
    """The archive with its signature: whoever uses it verifies both before unpacking."""
    return services.run(lambda s: services.models.archive(s, f"{name}@{version}"))
