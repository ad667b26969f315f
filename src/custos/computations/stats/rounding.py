"""Rounding of the published figures of a `stats` result, as the policy asks (none, nearest N, or
OpenSAFELY's midpoint 6). It runs on pooled figures only: the sites send exact counts, and only what
the researcher reads is rounded. Noisy (DP) counts are not rounded: the noise already hides them.

A rounded count must not come back through the figures published beside it, so under rounding:

- `count`, frequencies and histogram bins are rounded, each on its own;
- `sum` is exact (it says nothing about the count on its own);
- `mean` is derived from the rounded count: the exact sum over the published count, so `sum / mean`
  gives the published count back, never the exact one;
- `variance` and `std` are withheld: every form of them (exact, or over the rounded count) gives the
  exact count back with the sums beside it, and on integer data even alone (n(n-1) * variance is a
  whole number for the true n, and hardly ever for another).

With `totals_from_cells`, an all-rows figure is the sum of its groups' published figures
(`combine.py` applies it).
"""

from __future__ import annotations

from typing import Any

from custos.computations.columns import finite
from custos.privacy.controls import DisclosureRules
from custos.privacy.sdc import round_count

Json = dict[str, Any]


def rounding_label(rules: DisclosureRules) -> str | None:
    if rules.rounding == "none":
        return None
    return "midpoint6" if rules.rounding == "midpoint6" else f"nearest {rules.round_to}"


def rounding_note(rules: DisclosureRules) -> str | None:
    label = rounding_label(rules)
    if label is None:
        return None
    return (
        f"counts are rounded ({label}) one by one, so a margin need not equal the sum of its cells; "
        "each mean is its exact sum over its rounded count; variance and std are withheld, since "
        "with the sums they would give the exact counts back"
    )


def published_summary(values: Json, rules: DisclosureRules, count: int | None = None) -> Json:
    """The statistics of a pooled cell as they may be published. `values` holds every statistic,
    exact; `count`, when given, is the count to publish (a total of rounded cells) instead of the
    cell's own rounded count."""
    if rules.rounding == "none" and count is None:
        return values
    published = round_count(values["count"], rules) if count is None else count
    total = values.get("sum")
    mean = finite(float(total) / published) if total is not None and published else None
    out = {**values, "count": published, "mean": mean}
    if rules.rounding != "none":
        out |= {"variance": None, "std": None}
    return out


def round_result(result: Json, rules: DisclosureRules) -> Json:
    """A final result with its rounding stated (the figures were rounded when they were pooled)."""
    label = rounding_label(rules)
    return result if label is None else {**result, "rounding": label}
