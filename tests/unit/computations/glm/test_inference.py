"""`glm`'s own distributions against scipy."""

from __future__ import annotations

import pytest
from scipy import special, stats

from custos.computations.glm.inference import (
    NORMAL_975,
    incomplete_beta,
    normal_two_sided,
    t_quantile_975,
    t_two_sided,
)


@pytest.mark.parametrize("df", [1, 2, 3, 9, 10.5, 30, 431, 5_000, 59_990, 2_000_000])
def test_student_t_tails_and_quantile_equal_scipy(df: float) -> None:
    # With millions of degrees of freedom scipy's own t.sf and betainc differ by 1e-10.
    rel = 1e-11 if df < 100_000 else 1e-9
    for t in [0.0, 0.01, 0.5, 1.0, 1.96, 2.5, 4.0, 8.0, 30.0, -3.0]:
        expected = 2 * stats.t.sf(abs(t), df)
        assert t_two_sided(t, df) == pytest.approx(expected, rel=rel, abs=1e-300), t
    assert t_quantile_975(df) == pytest.approx(stats.t.ppf(0.975, df), rel=1e-12)


def test_normal_tail_and_quantile_equal_scipy() -> None:
    for z in [0.0, 0.3, 1.0, 1.959963984540054, 3.0, 8.0, 20.0, -2.0]:
        assert normal_two_sided(z) == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-13, abs=1e-300)
    assert stats.norm.ppf(0.975) == NORMAL_975


@pytest.mark.parametrize(("a", "b"), [(0.5, 0.5), (2.0, 3.0), (0.5, 40.0), (250.0, 0.5), (30_000.0, 0.5)])
def test_incomplete_beta_equals_scipy(a: float, b: float) -> None:
    for x in [1e-9, 0.01, 0.2, 0.5, 0.8, 0.99, 0.999999]:
        expected = special.betainc(a, b, x)
        assert incomplete_beta(a, b, x, 1 - x) == pytest.approx(expected, rel=1e-11, abs=1e-300)
    assert incomplete_beta(a, b, 0.0, 1.0) == 0.0
    assert incomplete_beta(a, b, 1.0, 0.0) == 1.0
