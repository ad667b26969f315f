"""The quantile search's counts, masked so that the orchestrator reads only their sum over the sites
(`custos.privacy.secure_sum`).

At the gateway (`seal_site_result`, after the disclosure filter): round 0's summary result of a job
with quantiles gets the site's mask key announcement (`mask_key`); in each quantile round, every
search's `counts` is replaced by `masked`, the counts plus the site's pairwise masks for that round.
A gateway masks whatever the orchestrator asks: a quantile round without a valid mask key for every
site, this one's included, is refused.

At the orchestrator: round 0 gathers the announcements into the quantile rounds' `peers`
(`announced_keys`); each search's pooled counts are the sum of the sites' masked vectors modulo 2**64
(`pooled_counts`), which are real counts only when every site masked for the same round, so they are
checked against what the cell can hold (`check_pooled`). A job driven without gateways (the model in
process, as the unit tests and the documentation do) announces no keys and sums plain counts.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from custos.computations.stats.params import StatsParams
from custos.computations.stats.wire import QuantileRound, SearchCounts, parse_round_input
from custos.core.errors import InvalidInput, PolicyDenied
from custos.privacy.secure_sum import SiteKey, unmask_sum

Json = dict[str, Any]
MASK_KEY = "mask_key"


def seal_site_result(params: StatsParams, round_input: Json, result: Json, key: SiteKey | None) -> Json:
    """The filtered `result` as it leaves the gateway: see the module docstring."""
    phase = result.get("phase")
    if phase == "summary" and params.quantiles and key is not None:
        return {**result, MASK_KEY: key.announcement()}
    if phase != "quantiles":
        return result
    if key is None:
        raise PolicyDenied(
            "this gateway holds no kit key to mask the quantile search's counts with; it sends them "
            "only masked"
        )
    step = parse_round_input(round_input)
    if not isinstance(step, QuantileRound) or step.peers is None:
        raise InvalidInput(
            "round_input.peers: a quantile round must carry every site's mask key; this gateway sends "
            "the search's counts only masked"
        )
    masker = key.masker(step.peers, round_input)
    searches = []
    for answer in result.get("searches", []):
        if answer.get("counts") is None:
            searches.append(answer)
            continue
        plain = {k: v for k, v in answer.items() if k != "counts"}
        searches.append({**plain, "masked": masker.mask(f"search {answer['id']}", answer["counts"])})
    return {**result, "searches": searches}


def announced_keys(site_results: Mapping[str, Json]) -> dict[str, Json] | None:
    """Every site's mask key from round 0's results, or None when no site sent one (no gateway)."""
    keys = {site: result[MASK_KEY] for site, result in site_results.items() if MASK_KEY in result}
    if not keys:
        return None
    missing = sorted(set(site_results) - set(keys))
    if missing:
        raise InvalidInput(
            f"the result of {', '.join(missing)} has no mask key while other sites sent theirs; the "
            "quantile search needs one from every site"
        )
    for site, key in keys.items():
        if not isinstance(key, dict) or key.get("site") != site:
            raise InvalidInput(f"the mask key in the result of {site} is not that site's")
    return keys


def check_answer(site: str, answer: SearchCounts, cuts: int, masked: bool) -> None:
    """One site's answer to one search has the form the round asks for."""
    if masked:
        if answer.masked is None or answer.counts is not None:
            raise InvalidInput(f"the result of {site} does not mask its counts for search {answer.id}")
    elif answer.counts is None or len(answer.counts) != cuts or answer.masked is not None:
        raise InvalidInput(f"the result of {site} has {cuts} counts expected for search {answer.id}")


def pooled_counts(answers: Sequence[SearchCounts], cuts: int, masked: bool) -> list[int]:
    if masked:
        return unmask_sum((a.masked for a in answers if a.masked is not None), cuts)
    return [sum(column) for column in zip(*(a.counts or [] for a in answers), strict=True)]


def check_pooled(search_id: int, pooled: Sequence[int], most: int) -> None:
    """Pooled counts of values in (lo, t] for increasing t: from 0 up to the `most` values the
    interval can hold, never decreasing. Masks that did not cancel give anything else."""
    if any(c < 0 or c > most for c in pooled) or any(b < a for a, b in itertools.pairwise(pooled)):
        raise InvalidInput(
            f"the pooled counts of search {search_id} are not counts of its cell: a site masked them "
            "for another round input or with another key, or its data changed during the job"
        )
