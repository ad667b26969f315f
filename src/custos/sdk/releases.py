"""The Client's calls of release review: the held results a reviewer may see, each held output and
the bytes it refers to, and their votes."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from custos.core.blobs import internalize
from custos.core.errors import InvalidInput
from custos.core.refs import parse_dataset_ref
from custos.core.states import ReleaseState
from custos.core.wire import (
    HELD_RESULT,
    HeldOutput,
    HeldOutputView,
    ReleaseDetail,
    ReleasePublic,
    ReleaseVoteCreate,
)
from custos.sdk.responses import check_response, decode, decode_list
from custos.sdk.session import Session

if TYPE_CHECKING:
    import pandas as pd

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

    def release_outputs(self, release_id: str) -> list[HeldOutput]:
        """The outputs of the release that you review, without their content: your org's sites'
        outputs of a per-site result, or the one pooled `result`."""
        return decode_list(self._send("GET", f"/releases/{_release_id(release_id)}/outputs"), HeldOutput)

    def release_output(self, release_id: str, name: str) -> HeldOutputView:
        """One held output (`gateway/dataset`, or `result`) as held: bytes as blob references. The
        orchestrator records that you viewed it."""
        return decode(self._send("GET", _output_path(release_id, name)), HeldOutputView)

    def fetch_release_output(self, release_id: str, name: str) -> pd.DataFrame | dict[str, Any] | bytes:
        """One held output with its bytes fetched and checked against their digests: a site's table as
        a DataFrame, its JSON as a dict, its file as bytes; a pooled result as a dict. Audited."""
        view = self.release_output(release_id, name)
        output = internalize(view.output, lambda digest, size: self._held_blob(release_id, digest))
        if view.kind == "result":
            held: dict[str, Any] = output
            return held
        from custos.computations.custom.wire import decode_output

        return decode_output(output)

    def _held_blob(self, release_id: str, digest: str) -> bytes:
        path = f"/releases/{_release_id(release_id)}/blobs/{digest}"
        return check_response(self._send("GET", path)).content

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


def _output_path(release_id: str, name: str) -> str:
    base = f"/releases/{_release_id(release_id)}/outputs"
    if name == HELD_RESULT:
        return f"{base}/{HELD_RESULT}"
    ref = parse_dataset_ref(name)
    return f"{base}/{ref.gateway}/{ref.dataset}"


def _release_id(release_id: str) -> str:
    if not _RELEASE_ID.fullmatch(release_id):
        raise InvalidInput(f"{release_id!r} is not a release id; `custos release list` shows yours")
    return release_id
