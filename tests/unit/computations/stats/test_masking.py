"""The quantile search with the gateways' masks: each site's counts leave masked, the orchestrator
sums them, and the quantiles stay exactly pandas'. A round that cannot be masked is refused at the
gateway, and masks that do not cancel fail the job instead of steering the search."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from cryptography import x509

from custos.computations.base import Final, MaskedSums, NextRound
from custos.computations.stats.model import StatsModel
from custos.core.blobs import through_wire
from custos.core.clock import utcnow
from custos.core.errors import InvalidInput, PolicyDenied
from custos.core.identity import Identity, Role
from custos.data.table_reader import TableDalReader
from custos.pki.certs import create_root_ca, generate_key, issue_certificate
from custos.pki.verify import verify_certificate
from custos.privacy.secure_sum import MaskKeys

Json = dict[str, Any]
MODEL = StatsModel()
MIN_COUNT = 10
PROBS = [0.0, 0.1, 0.25, 1 / 3, 0.5, 0.9, 1.0]


def check(root: x509.Certificate, cert: x509.Certificate) -> Identity:
    return verify_certificate(cert, root, utcnow())


@pytest.fixture
def keys(make_cohort: Callable[..., dict[str, pa.Table]]) -> dict[str, MaskKeys]:
    root, root_key = create_root_ca("project")
    out = {}
    for site in make_cohort(1):
        key = generate_key()
        identity = Identity(site.split("/")[0], "org", Role.GATEWAY)
        cert = issue_certificate(root, root_key, identity, key.public_key())
        out[site] = MaskKeys(cert, key, partial(check, root))
    return out


def compute(site: str, table: pa.Table, params: Json, round_input: Json) -> Json:
    dataset = site.split("/")[1]
    return through_wire(MODEL.compute_site(TableDalReader({dataset: table}), dataset, params, round_input))


def gateway(site: str, table: pa.Table, params: Json, round_input: Json, keys: MaskKeys | None) -> Json:
    """What one gateway sends: the site's answer, filtered, then sealed with the site's key."""
    raw = compute(site, table, params, round_input)
    filtered = MODEL.filter_site_result(params, raw, MIN_COUNT)
    key = keys.for_site("job_1", site) if keys is not None else None
    return through_wire(MODEL.seal_site_result(params, round_input, filtered, key))


def run(
    params: Json, sites: Mapping[str, pa.Table], keys: Mapping[str, MaskKeys]
) -> tuple[Json, list[tuple[Json, dict[str, Json]]]]:
    step = MODEL.start(params)
    state, round_input = step.state, step.round_input
    rounds = []
    for _ in range(20):
        results = {
            site: gateway(site, table, params, round_input, keys[site]) for site, table in sites.items()
        }
        rounds.append((round_input, results))
        outcome = MODEL.aggregate(params, state, results, MIN_COUNT)
        if isinstance(outcome, Final):
            return through_wire(outcome.result), rounds
        state, round_input = through_wire(outcome.state), through_wire(outcome.round_input)
    raise AssertionError("the search did not end")


def test_masked_counts_give_the_exact_pooled_quantiles(
    make_cohort: Callable[..., dict[str, pa.Table]], keys: dict[str, MaskKeys]
) -> None:
    assert isinstance(MODEL, MaskedSums)
    sites = make_cohort(11)
    params = {"columns": ["bmi"], "group_by": "sex", "quantiles": [{"column": "bmi", "probs": PROBS}]}

    result, rounds = run(params, sites, keys)

    frame = pa.concat_tables(sites.values()).to_pandas()
    # all rows, each sex, and the (missing) group of rows whose sex is null
    assert len(result["quantiles"]) == 5 * len(PROBS)
    for entry in result["quantiles"]:
        group = entry["group"]
        missing = frame["sex"].isna()
        cell = (
            frame
            if group is None
            else frame[missing]
            if group == "(missing)"
            else frame[frame["sex"] == group]
        )
        want = cell["bmi"].quantile(entry["prob"])
        if "reason" in entry:  # a suppressed cell (the empty (missing) group, and what hides it)
            assert entry.get("value") is None, entry
        else:
            assert entry["value"] == (None if pd.isna(want) else want), entry
    published = {e["group"] for e in result["quantiles"] if "reason" not in e}
    assert {None, "F", "M"} <= published
    (first_input, summaries), searches = rounds[0], rounds[1:]
    assert first_input == {"phase": "summary"}
    assert {r["mask_key"]["site"] for r in summaries.values()} == set(sites)
    assert len(searches) >= 7
    for round_input, results in searches:
        assert set(round_input["peers"]) == set(sites)
        for answers in results.values():
            assert answers["searches"] and all(
                set(a) == {"id", "column", "group", "masked"} for a in answers["searches"]
            )


def first_search_round(
    sites: Mapping[str, pa.Table], keys: Mapping[str, MaskKeys], params: Json
) -> NextRound:
    step = MODEL.start(params)
    results = {s: gateway(s, t, params, step.round_input, keys[s]) for s, t in sites.items()}
    outcome = MODEL.aggregate(params, step.state, results, MIN_COUNT)
    assert isinstance(outcome, NextRound)
    return outcome


def test_a_gateway_masks_or_refuses_the_round(
    make_cohort: Callable[..., dict[str, pa.Table]], keys: dict[str, MaskKeys]
) -> None:
    sites = make_cohort(3)
    params = {"quantiles": [{"column": "bmi", "probs": [0.5]}]}
    round_input = first_search_round(sites, keys, params).round_input
    site, table = next(iter(sites.items()))

    with pytest.raises(PolicyDenied, match="holds no kit key"):
        gateway(site, table, params, round_input, None)
    bare = {k: v for k, v in round_input.items() if k != "peers"}
    with pytest.raises(InvalidInput, match="must carry every site's mask key"):
        gateway(site, table, params, bare, keys[site])
    # Without a gateway's key the summary round announces nothing, and its search is not masked.
    plain = MODEL.seal_site_result(params, {"phase": "summary"}, {"phase": "summary"}, None)
    assert plain == {"phase": "summary"}


def test_the_orchestrator_refuses_plain_or_uncancelled_counts_in_a_masked_round(
    make_cohort: Callable[..., dict[str, pa.Table]], keys: dict[str, MaskKeys]
) -> None:
    sites = make_cohort(5)
    params = {"quantiles": [{"column": "bmi", "probs": [0.5]}]}
    step = first_search_round(sites, keys, params)
    results = {s: gateway(s, t, params, step.round_input, keys[s]) for s, t in sites.items()}
    site, table = next(iter(sites.items()))

    raw = compute(site, table, params, step.round_input)
    unmasked = {**results, site: MODEL.filter_site_result(params, raw, MIN_COUNT)}
    with pytest.raises(InvalidInput, match=f"the result of {site} does not mask its counts"):
        MODEL.aggregate(params, step.state, unmasked, MIN_COUNT)

    # One site masked for another round input: the masks do not cancel, and the job stops.
    other = {**step.round_input, "round": step.round_input["round"] + 1}
    stray = {**results, site: gateway(site, table, params, other, keys[site])}
    with pytest.raises(InvalidInput, match="are not counts of its cell"):
        MODEL.aggregate(params, step.state, stray, MIN_COUNT)

    # A site that sends no mask key in round 0 while the others do is refused there.
    start = MODEL.start(params)
    summaries = {s: gateway(s, t, params, start.round_input, keys[s]) for s, t in sites.items()}
    summaries[site] = {k: v for k, v in summaries[site].items() if k != "mask_key"}
    with pytest.raises(InvalidInput, match=f"the result of {site} has no mask key"):
        MODEL.aggregate(params, start.state, summaries, MIN_COUNT)


def test_a_site_answer_leaks_nothing_of_its_counts_without_the_others(
    make_cohort: Callable[..., dict[str, pa.Table]], keys: dict[str, MaskKeys]
) -> None:
    sites = make_cohort(9)
    params = {"quantiles": [{"column": "bmi", "probs": [0.5]}]}
    step = first_search_round(sites, keys, params)
    for site, table in sites.items():
        answers = gateway(site, table, params, step.round_input, keys[site])["searches"]
        assert len(answers) == 2  # the two order statistics of an even count's median
        for answer in answers:
            words = np.frombuffer(base64.b64decode(answer["masked"]), dtype="<u8")
            # Counts are at most the site's rows; masked words are spread over all of 64 bits.
            assert len(words) == 255 and int(words.min()) > len(table)
