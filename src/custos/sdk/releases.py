"""The Client's calls of release review: the held results a reviewer may see, and their votes."""

from __future__ import annotations

import re

from custos.core.errors import InvalidInput
from custos.core.states import ReleaseState
from custos.core.wire import (
    ReleaseDetail,
    ReleasePublic,
    ReleaseVoteCreate,
)
from custos.sdk.responses import decode, decode_list
from custos.sdk.session import Session

_RELEASE_ID = re.compile(r"rel_[0-9a-f]{16}")


class ReleasesMixin(Session):
    """Review of held results: list, show, and approve, return or reject."""

    def releases(self, state: ReleaseState | str | None = None) -> list[ReleasePublic]:
        """The held results you may review (never your own jobs'), oldest first; `state` filters."""
        if state is None:
            return decode_list(self._send("GET", "/releases"), ReleasePublic)
        try:
            value = ReleaseState(state).value
        except ValueError:
            accepted = ", ".join(ReleaseState)
            raise InvalidInput(f"release state {state!r} is not one of {accepted}") from None
        return decode_list(self._send("GET", f"/releases?state={value}"), ReleasePublic)

    def release(self, release_id: str) -> ReleaseDetail:
        """A release with its held result, and the model, parameters and columns that made it."""
        return decode(self._send("GET", f"/releases/{_release_id(release_id)}"), ReleaseDetail)

    def approve_release(self, release_id: str, reason: str = "") -> ReleaseDetail:
        """Approve your org's part; the result is released when every org's part is approved."""
        return self._vote(release_id, "approve", reason)

    def return_release(self, release_id: str, reason: str) -> ReleaseDetail:
        """Send the result back to the researcher with `reason`; it is not released and the job fails."""
        return self._vote(release_id, "return", reason)

    def reject_release(self, release_id: str, reason: str) -> ReleaseDetail:
        """Refuse the release with `reason`; the job fails."""
        return self._vote(release_id, "reject", reason)

    def _vote(self, release_id: str, decision: str, reason: str) -> ReleaseDetail:
        if decision != "approve" and not reason.strip():
            raise InvalidInput(f"reason is required to {decision} a release: tell the researcher why")
        body = ReleaseVoteCreate(reason=reason).model_dump(mode="json")
        path = f"/releases/{_release_id(release_id)}/{decision}"
        return decode(self._send("POST", path, body=body), ReleaseDetail)


def _release_id(release_id: str) -> str:
    if not _RELEASE_ID.fullmatch(release_id):
        raise InvalidInput(f"{release_id!r} is not a release id; `custos release list` shows yours")
    return release_id
