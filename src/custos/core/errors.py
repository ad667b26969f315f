"""Custos exceptions. Every error a user can cause speaks to the user: what was wrong, what is accepted.

CustosError
 ├── InvalidInput          400  bad field or value; names the field and what is accepted
 ├── AuthenticationFailed  401  no proof of identity, or the proof did not verify
 ├── PermissionDenied      403  the caller is known but not allowed
 │    └── PolicyDenied     403  an asset policy refuses the computation
 ├── NotFound              404
 ├── Conflict              409  the resource is not in a state that allows this
 │    └── InvalidTransition     a state machine refused a transition
 ├── PayloadTooLarge       413
 ├── KitError                   a startup kit is missing a file or fails verification
 └── SandboxError               a computation could not run, or its sandbox ended
      └── LimitExceeded         it broke a limit (CPU, memory, processes, output or wall clock)
"""

from __future__ import annotations


class CustosError(Exception):
    """Base of every Custos error. `status` is the HTTP status an API maps it to."""

    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidInput(CustosError):
    status = 400


class AuthenticationFailed(CustosError):
    status = 401


class PermissionDenied(CustosError):
    status = 403


class PolicyDenied(PermissionDenied):
    pass


class NotFound(CustosError):
    status = 404


class Conflict(CustosError):
    status = 409


class InvalidTransition(Conflict):
    pass


class PayloadTooLarge(CustosError):
    status = 413


class KitError(CustosError):
    status = 500


class SandboxError(CustosError):
    status = 500


class LimitExceeded(SandboxError):
    """The sandbox ended a computation for breaking one of its limits; the message names the limit."""


# The exception a client raises for an HTTP refusal; the server maps each class back to its status.
ERRORS_BY_STATUS: dict[int, type[CustosError]] = {
    400: InvalidInput,
    401: AuthenticationFailed,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidInput,
}
