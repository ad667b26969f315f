"""The flags a reviewer reads (`ReleaseDetail.flags`): the gateways' findings in the site outputs
shown, each with its dataset; an output without a check, or with a flag that cannot be read, is
flagged unchecked rather than shown as clean."""

from __future__ import annotations

from custos.orchestrator.services.releases import output_flags

FLAG = {"row": 0, "column": "n", "rule": "min_count", "value_class": "count", "action": "flagged",
        "reason": "fewer than 10 rows"}  # fmt: skip


def test_flags_carry_their_dataset_and_a_pooled_result_has_none() -> None:
    result = {
        "sites": {"site-b/p": {"type": "table", "flags": []}, "site-a/p": {"type": "table", "flags": [FLAG]}}
    }
    (flag,) = output_flags(result)
    assert (flag.dataset, flag.row, flag.column, flag.rule) == ("site-a/p", 0, "n", "min_count")
    assert output_flags({"summaries": []}) == []


def test_an_output_without_a_check_or_with_a_bad_flag_is_unchecked() -> None:
    result = {
        "sites": {"site-a/p": {"type": "table"}, "site-b/p": {"type": "json", "flags": [{"rule": "x"}, 3]}}
    }
    flags = output_flags(result)
    assert [(f.dataset, f.rule, f.action) for f in flags] == [
        ("site-a/p", "unchecked", "unchecked"),
        ("site-b/p", "unchecked", "unchecked"),
        ("site-b/p", "unchecked", "unchecked"),
    ]
    assert "carries no automatic check" in flags[0].reason and "could not be read" in flags[1].reason
