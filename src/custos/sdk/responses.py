"""How the SDK reads the orchestrator's answers: a wire model on success, a Custos error otherwise.

The orchestrator reports every refusal as a 4xx with `{"detail": "one sentence"}`; the status picks the
exception class from the tree in `custos.core.errors`, and the server's sentence becomes its message,
inert (`custos.core.inert`): it may quote someone else's text, and a traceback prints it raw.
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from custos.core.errors import ERRORS_BY_STATUS, CustosError
from custos.core.inert import inert

ModelT = TypeVar("ModelT", bound=BaseModel)

_MAX_DETAIL_CHARS = 500


def error_detail(response: httpx.Response) -> str:
    """The server's explanation: `detail` from a JSON body, else the start of the body, else the reason."""
    try:
        body: Any = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:_MAX_DETAIL_CHARS] if text else response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str) and detail:
        return detail
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        # FastAPI's request validation errors: name the first bad field and what was wrong with it.
        first = detail[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = str(first.get("msg", "invalid value"))
        return f"{where}: {message}" if where else message
    return response.reason_phrase or f"HTTP {response.status_code}"


def error_for(response: httpx.Response) -> CustosError:
    """The Custos exception for a refused request."""
    detail = inert(error_detail(response), multiline=False)
    kind = ERRORS_BY_STATUS.get(response.status_code)
    if kind is not None:
        return kind(detail)
    if response.status_code >= 500:
        return CustosError(f"the orchestrator failed to answer ({response.status_code}): {detail}")
    return CustosError(f"the orchestrator refused the request ({response.status_code}): {detail}")


def check_response(response: httpx.Response) -> httpx.Response:
    if response.is_success:
        return response
    raise error_for(response)


def decode(response: httpx.Response, model: type[ModelT]) -> ModelT:
    try:
        return model.model_validate_json(check_response(response).content)
    except ValidationError as exc:
        raise CustosError(
            f"the orchestrator's answer to {response.request.url.path} is not a valid {model.__name__}: "
            f"{exc.errors()[0]['msg']}"
        ) from exc


def decode_list(response: httpx.Response, model: type[ModelT]) -> list[ModelT]:
    try:
        return TypeAdapter(list[model]).validate_json(check_response(response).content)  # type: ignore[valid-type]
    except ValidationError as exc:
        raise CustosError(
            f"the orchestrator's answer to {response.request.url.path} is not a list of {model.__name__}: "
            f"{exc.errors()[0]['msg']}"
        ) from exc
