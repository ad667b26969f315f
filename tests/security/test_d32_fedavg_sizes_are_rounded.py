"""Threat D32 (docs/threats.md) for `fedavg`: a site's training and held-out row counts are counts, so
under a policy that rounds counts they leave each gateway rounded, and nothing published beside them
gives the unrounded count back: not an accuracy (a share whose denominator is the count), and not the
pooled standardisation mean (a mean of an integer feature whose denominator is the count).

Real processes: an orchestrator and two gateways on loopback, under nearest-5 and midpoint-6
rounding. The exact counts are computed here from the sites' tables with the model's own split.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

from custos.computations.fedavg.params import parse_params
from custos.computations.fedavg.site import read_site
from custos.core.states import JobState
from custos.data.synthetic import synthetic_patients
from custos.data.table_reader import TableDalReader
from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, UserSetup
from custos.privacy.controls import DisclosureRules
from custos.privacy.sdc import round_count

SITES = [("site-a", "hospital-a"), ("site-b", "hospital-b")]
TABLES = [synthetic_patients(213, site=0, seed=5), synthetic_patients(347, site=1, seed=5)]
COLUMNS = ["age", "bmi", "smoker"]
DISCLOSURE: dict[str, dict[str, Any]] = {
    "nearest5": {"min_count": 10, "rounding": "nearest", "round_to": 5},
    "midpoint6": {"min_count": 10, "rounding": "midpoint6"},
}
RULES = {name: DisclosureRules.model_validate(rules) for name, rules in DISCLOSURE.items()}
PARAMS: dict[str, Any] = {
    "model": "logistic", "features": ["age", "bmi"], "label": "smoker", "positive": "yes",
    "rounds": 2, "batch_size": 64, "learning_rate": 0.2, "holdout": 0.25, "seed": 3,
}  # fmt: skip


def policy(name: str) -> dict[str, Any]:
    return {
        "dataset": name,
        "grants": [{"orgs": ["university"], "models": ["fedavg@>=1.0,<2"], "columns": COLUMNS}],
        "privacy": {"disclosure": DISCLOSURE[name]},
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    gateways = [
        GatewaySetup(name, org, [DatasetSetup(rule, table, policy(rule)) for rule in RULES])
        for (name, org), table in zip(SITES, TABLES, strict=True)
    ]
    work = tmp_path_factory.mktemp("d32-fedavg")
    with Cluster(work, gateways=gateways, users=[UserSetup("alice", "university")], project="d32") as c:
        yield c


def exact_counts(table: pa.Table) -> tuple[int, int]:
    """(n_train, n_holdout) of a site, as its sandbox counts them."""
    data = read_site(TableDalReader({"d": table}), "d", parse_params(PARAMS))
    return len(data.y_train), len(data.y_holdout)


def exact_age_sum(table: pa.Table) -> int:
    data = read_site(TableDalReader({"d": table}), "d", parse_params(PARAMS))
    return round(float(data.x_train[:, 0].sum()))


def counts_whose_rate_fits(rate: float, published: int, band: int) -> list[int]:
    """The attack: every row count near the published one of which `rate` is an exact share."""
    return [
        n
        for n in range(max(1, published - band), published + band + 1)
        if abs(rate * n - round(rate * n)) < 1e-9
    ]


def counts_whose_mean_fits(mean: float, published: int, band: int) -> list[int]:
    """The attack on a mean of an integer feature: the counts near the published one that make it a
    sum of integers."""
    return [
        n
        for n in range(max(1, published - band), published + band + 1)
        if abs(mean * n - round(mean * n)) < 1e-6
    ]


def run(cluster: Cluster, name: str, gateways: list[str]) -> dict[str, Any]:
    with cluster.client("alice") as alice:
        datasets = [f"{g}/{name}" for g in gateways]
        spec = alice.create_spec(f"fedavg-{name}-{len(gateways)}", "fedavg@1.0.0", datasets, COLUMNS)
        alice.activate_spec(spec.id)
        submitted = alice.submit_job(spec.id, PARAMS)
        assert alice.wait_job(submitted.id, timeout=180).state is JobState.SUCCEEDED
        return alice.job_result(submitted.id).data


@pytest.fixture(scope="module", params=list(RULES))
def job(request: pytest.FixtureRequest, cluster: Cluster) -> tuple[str, dict[str, Any]]:
    """A job over both sites."""
    return request.param, run(cluster, request.param, [g for g, _ in SITES])


def test_d32_fedavg_publishes_each_sites_row_counts_rounded_as_the_policy_says(
    job: tuple[str, dict[str, Any]],
) -> None:
    name, result = job
    rules = RULES[name]
    exact = {f"{g}/{name}": exact_counts(t) for (g, _), t in zip(SITES, TABLES, strict=True)}
    # The attack needs a count the rounding changes; these tables have them.
    assert any(round_count(n, rules) != n for pair in exact.values() for n in pair)
    for row in result["site_metrics"]:
        n_train, n_holdout = exact[row["site"]]
        assert (row["n_train"], row["n_holdout"]) == (
            round_count(n_train, rules),
            round_count(n_holdout, rules),
        )
    for site in result["final"]["sites"]:
        assert site["n_holdout"] == round_count(exact[site["site"]][1], rules)
    for row in result["history"]:
        assert row["n_train"] == sum(round_count(n, rules) or 0 for n, _ in exact.values())


def test_d32_an_accuracy_does_not_give_back_a_sites_unrounded_count(job: tuple[str, dict[str, Any]]) -> None:
    name, result = job
    band = 5 if name == "nearest5" else 6
    exact = {f"{g}/{name}": exact_counts(t) for (g, _), t in zip(SITES, TABLES, strict=True)}
    rows = [(r["site"], r["n_train"], r["train_accuracy"], 0) for r in result["site_metrics"]]
    rows += [(r["site"], r["n_holdout"], r["holdout_accuracy"], 1) for r in result["site_metrics"]]
    rows += [(s["site"], s["n_holdout"], s["holdout_accuracy"], 1) for s in result["final"]["sites"]]
    for site, published, rate, which in rows:
        truth = exact[site][which]
        if rate is None or published == truth:
            continue  # nothing to recover: the published count is the count
        recovered = counts_whose_rate_fits(rate, published, band)
        assert recovered != [truth], f"{site}: {rate} over {published} rows gives back {truth}"


@pytest.mark.parametrize("name", list(RULES))
def test_d32_the_standardisation_mean_does_not_give_back_the_unrounded_count(
    cluster: Cluster, name: str
) -> None:
    # One site: the pooled mean is that site's mean. Its training rows are a count the rounding changes.
    gateway, table = SITES[1][0], TABLES[1]
    truth = exact_counts(table)[0]
    published = round_count(truth, RULES[name])
    assert published is not None and published != truth
    result = run(cluster, name, [gateway])
    assert result["history"][0]["n_train"] == published
    age_mean = result["standardization"]["mean"][0]
    # The attack: a mean of integer ages is a sum of integers over the count; find the count near the
    # published one that makes it so.
    recovered = counts_whose_mean_fits(age_mean, published, 6)
    assert recovered != [truth], f"the mean age {age_mean!r} gives back {truth} training rows"
    # Yet standardisation still does its work: the published scaling is close to the exact one.
    exact_mean = exact_age_sum(table) / truth
    assert abs(age_mean - exact_mean) < 0.1 * result["standardization"]["std"][0]
