"""`glm`'s own distributions and linear algebra against scipy and numpy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from custos.computations.glm.inference import (
    NORMAL_975,
    Factor,
    incomplete_beta,
    normal_two_sided,
    t_quantile_975,
    t_two_sided,
    unpack_symmetric,
)
from custos.core.errors import InvalidInput


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


def test_the_factor_solves_and_inverts_like_numpy() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal([0, 50, 1e4, 0.001], [1, 10, 2e3, 0.0005], size=(300, 4))
    x[:, 0] = 1.0
    matrix = x.T @ x
    rhs = rng.normal(size=4)
    factor = Factor(matrix, ["intercept", "a", "b", "c"], "test")
    np.testing.assert_allclose(factor.solve(rhs), np.linalg.solve(matrix, rhs), rtol=1e-9)
    np.testing.assert_allclose(factor.inverse_diagonal(), np.diag(np.linalg.inv(matrix)), rtol=1e-9)
    upper = matrix[np.triu_indices(4)]
    np.testing.assert_array_equal(unpack_symmetric(upper.tolist(), 4), np.triu(matrix) + np.triu(matrix, 1).T)


def test_the_factor_names_a_collinear_term_and_a_term_without_rows() -> None:
    x = np.column_stack([np.ones(50), np.arange(50.0), np.arange(50.0) * 3 + 1, np.zeros(50)])
    with pytest.raises(InvalidInput, match=r"term 'c' is \(almost\) a linear combination .*\('one', 'b'\)"):
        Factor(x[:, :3].T @ x[:, :3], ["one", "b", "c"], "the predictors are collinear")
    with pytest.raises(InvalidInput, match="term 'd' is zero in every row"):
        Factor(x.T @ x, ["one", "b", "c", "d"], "here")
