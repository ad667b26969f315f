"""The portal's browser protections: the security headers every answer carries, and the CSRF tokens
of the portal's forms.

- Content-Security-Policy: scripts and styles only from the orchestrator's own `/static/` files, no
  inline script or style, no eval, no frames (`frame-ancestors 'none'`), forms post only to the
  orchestrator. Images may be `data:` URLs (a held PNG output is shown inline that way).
- A form's CSRF token is derived from the session cookie (HttpOnly, so no script and no other site can
  read it): `sha256("custos-portal-csrf" + cookie)`. The sign-in form, before any session, is tied
  to a random `custos_signin` cookie the same way (so another site cannot sign a browser in as
  someone else either).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: dict[str, str] = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}
SIGN_IN_COOKIE = "custos_signin"
CSRF_FIELD = "csrf"


def csrf_token(cookie: str) -> str:
    """The CSRF token of the forms shown to the holder of `cookie` (a session or sign-in cookie)."""
    return hashlib.sha256(b"custos-portal-csrf\n" + cookie.encode("utf-8")).hexdigest()


def csrf_matches(cookie: str | None, token: str | None) -> bool:
    if not cookie or not token:
        return False
    return hmac.compare_digest(csrf_token(cookie), token)


def new_sign_in_cookie() -> str:
    return secrets.token_urlsafe(32)


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every HTTP answer (the API's too: JSON is never framed either)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [
                    (k.encode("latin-1"), v.encode("latin-1"))
                    for k, v in SECURITY_HEADERS.items()
                    if k.encode("latin-1") not in present
                ]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
