"""Task filters as a mechanism: a site's privacy.yaml maps scopes to registered filters, a job names
its scope and may add its own filters, site filters run before the job's, and an unknown scope or
filter is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from custos.core.errors import InvalidInput, PolicyDenied
from custos.privacy.controls import PrivacyControls
from custos.privacy.filters import FILTERS, FilterContext, SitePrivacy, chain_for, load_site_privacy

PRIVACY_YAML = """
default_scope: public
scopes:
  public:
    task_result_filters:
      - {name: exclude_keys, args: {keys: [train_seconds]}}
  coarse:
    task_data_filters:
      - {name: exclude_keys, args: {keys: [mean]}}
    task_result_filters:
      - {name: round_counts, args: {to: 10}}
"""
RESULT: dict[str, Any] = {"phase": "train", "round": 1, "n_train": 27, "train_seconds": 0.5}


def _context(params: dict[str, Any]) -> FilterContext:
    return FilterContext("fedavg", params, {}, PrivacyControls(), params.get("scope"))


@pytest.fixture
def site(tmp_path: Path) -> SitePrivacy:
    path = tmp_path / "privacy.yaml"
    path.write_text(PRIVACY_YAML, encoding="utf-8")
    return load_site_privacy(path)


def test_site_filters_run_before_the_jobs(site: SitePrivacy) -> None:
    params = {"scope": "coarse", "task_result_filters": [{"name": "round_counts", "args": {"to": 3}}]}
    chain = chain_for(site, params)
    # Site first: 27 -> 20 (to 10) -> 18 (to 3). The job's first would give 27 -> 27 -> 20.
    assert chain.filter_result(dict(RESULT), _context(params))["n_train"] == 18


def test_data_filters_change_what_the_sandbox_is_handed(site: SitePrivacy) -> None:
    params = {"scope": "coarse"}
    handed = chain_for(site, params).filter_data(
        {"phase": "train", "mean": [1.0], "round": 1}, _context(params)
    )
    assert handed == {"phase": "train", "round": 1}


def test_a_job_without_a_scope_gets_the_default_scope(site: SitePrivacy) -> None:
    chain = chain_for(site, {})
    assert chain.scope == "public"
    assert "train_seconds" not in chain.filter_result(dict(RESULT), _context({}))


def test_an_unknown_scope_is_refused_never_defaulted(site: SitePrivacy) -> None:
    with pytest.raises(
        PolicyDenied, match=r"scope 'secret' is not defined at this site \(its scopes: coarse, public\)"
    ):
        chain_for(site, {"scope": "secret"})
    with pytest.raises(PolicyDenied, match="scope 'public' is not defined"):
        chain_for(SitePrivacy(), {"scope": "public"})


def test_no_privacy_file_means_no_scopes(tmp_path: Path) -> None:
    site = load_site_privacy(tmp_path / "privacy.yaml")
    assert site == SitePrivacy()
    assert chain_for(site, {}).filter_result(dict(RESULT), _context({})) == RESULT


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "scopes: {a: {task_result_filters: [{name: os.system}]}}",
            "unknown filter 'os.system'; registered: ",
        ),
        ("scopes: {a: {task_result_filters: [{name: exclude_keys, path: x.y.Z}]}}", "path"),
        ("scopes: {a: {task_data_filters: [{name: clip_and_noise}]}}", "not a task data filter"),
        (
            "scopes: {a: {task_result_filters: [{name: exclude_keys, args: {keys: [phase]}}]}}",
            "may not remove",
        ),
        ("scopes: {a: {task_result_filters: [{name: round_counts, args: {to: 1}}]}}", "args.to"),
        (
            "scopes: {a: {task_result_filters: [{name: clip_and_noise, args: {clip_norm: 9}}]}}",
            "takes no args",
        ),
        ("default_scope: b\nscopes: {a: {}}", "default_scope 'b' is not one of the scopes"),
        ("scopes: [", "not valid YAML"),
    ],
)
def test_only_registered_filters_with_valid_args_load(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "privacy.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidInput, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_site_privacy(path)


def test_a_jobs_own_filters_come_from_the_registry_too(site: SitePrivacy) -> None:
    with pytest.raises(InvalidInput, match=r"unknown filter 'custom\.Filter'"):
        chain_for(site, {"task_result_filters": [{"name": "custom.Filter"}]})
    assert sorted(FILTERS) == ["clip_and_noise", "exclude_keys", "round_counts"]
