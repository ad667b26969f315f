"""Rounding of the published counts of a final `stats` result, as the policy asks (none, nearest N, or
OpenSAFELY's midpoint 6). It runs on pooled counts only: the sites send exact counts, so pooled means
and variances stay exact, and only what the researcher reads is rounded. Noisy (DP) counts are not
rounded: the noise already hides them."""

from __future__ import annotations

from typing import Any

from custos.privacy.controls import DisclosureRules
from custos.privacy.sdc import round_count

Json = dict[str, Any]


def round_result(result: Json, rules: DisclosureRules) -> Json:
    """A copy of a final result with every published count rounded."""
    if rules.rounding == "none":
        return result
    summaries = [
        {**e, "count": round_count(e["count"], rules)} if e.get("count") is not None else e
        for e in result.get("summaries", [])
    ]
    frequencies = [
        {**e, "count": round_count(e["count"], rules)} if e.get("count") is not None else e
        for e in result.get("frequencies", [])
    ]
    histograms = [
        {**e, "counts": [round_count(c, rules) for c in e["counts"]]} for e in result.get("histograms", [])
    ]
    rounding = "midpoint6" if rules.rounding == "midpoint6" else f"nearest {rules.round_to}"
    return {
        **result,
        "summaries": summaries,
        "frequencies": frequencies,
        "histograms": histograms,
        "rounding": rounding,
    }
