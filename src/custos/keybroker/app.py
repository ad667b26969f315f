"""The key broker's HTTP API. Routes are thin: `KeyBroker` decides.

POST /api/v1/nonces          a fresh single-use nonce for attestation evidence
POST /api/v1/keys/release    KeyReleaseRequest -> WrappedKey, or 403 with the reason
POST /api/v1/owner           OwnerRequest (deposit, policy, revoke) signed by the owner's kit
GET  /healthz
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from custos.core.errors import CustosError
from custos.core.wire.keybroker import KeyPublic, KeyReleaseRequest, NonceIssued, OwnerRequest, WrappedKey
from custos.keybroker.service import KeyBroker


def create_app(broker: KeyBroker) -> FastAPI:
    app = FastAPI(title="Custos key broker", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(CustosError)
    async def _custos_error(_: Request, exc: CustosError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid"}
        field = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse({"detail": f"{field}: {first.get('msg')}"}, status_code=400)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "org": broker.org}

    @app.post("/api/v1/nonces")
    def nonce() -> NonceIssued:
        return broker.nonce()

    @app.post("/api/v1/keys/release")
    def release(body: KeyReleaseRequest) -> WrappedKey:
        return broker.release(body)

    @app.post("/api/v1/owner")
    def owner(body: OwnerRequest) -> KeyPublic:
        return broker.owner_request(body)

    return app
