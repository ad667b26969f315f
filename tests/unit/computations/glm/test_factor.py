"""`glm`'s triangular factors: a site's is a function of its X'WX and X'Wz alone, and the pooled one
solves and inverts like numpy's least squares on the stacked rows."""

from __future__ import annotations

import numpy as np
import pytest

from custos.computations.glm.factor import PooledFactor, SiteFactor, pack_upper, unpack_upper
from custos.core.errors import InvalidInput

Floats = np.ndarray


def site_factor(x: Floats, z: Floats, weights: Floats | None = None, chunk: int = 1000) -> SiteFactor:
    root = np.ones(len(x)) if weights is None else np.sqrt(weights)
    factor = SiteFactor(x.shape[1])
    for start in range(0, len(x), chunk):
        rows = slice(start, start + chunk)
        factor.add(x[rows], root[rows], (root * z)[rows])
    return factor


def design(rng: np.random.Generator, n: int) -> Floats:
    x = rng.normal([0, 50, 1e4, 0.001], [1, 10, 2e3, 0.0005], size=(n, 4))
    x[:, 0] = 1.0
    return x


def test_a_site_factor_is_the_cholesky_factor_of_its_gram_matrix_whatever_the_row_order() -> None:
    rng = np.random.default_rng(1)
    x, z, w = design(rng, 300), rng.normal(size=300), rng.uniform(0.5, 2, 300)
    triangle, rotated = site_factor(x, z, w, chunk=70).canonical()

    gram = x.T @ (x * w[:, None])
    np.testing.assert_allclose(triangle, np.linalg.cholesky(gram).T, rtol=1e-11, atol=1e-9)
    np.testing.assert_allclose(triangle.T @ rotated, x.T @ (w * z), rtol=1e-11)
    assert (np.diag(triangle) > 0).all()
    # Other rows with the same X'WX and X'Wz (here: the same rows in another order, or another
    # chunking) give the same message, so it tells nothing the sums do not.
    order = rng.permutation(300)
    again, rotated_again = site_factor(x[order], z[order], w[order], chunk=300).canonical()
    np.testing.assert_allclose(again, triangle, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(rotated_again, rotated, rtol=1e-12)


def test_a_column_zero_at_the_site_gives_a_zero_row_not_the_rows_behind_it() -> None:
    rng = np.random.default_rng(2)
    x = np.column_stack([np.ones(40), np.zeros(40), rng.normal(size=40), 3 * np.ones(40)])
    z = rng.normal(size=40)
    triangle, rotated = site_factor(x, z).canonical()

    # Column 1 (a level the site lacks) and column 3 (the intercept again) have zero rows.
    assert triangle[1].tolist() == [0.0] * 4 and rotated[1] == 0.0
    assert triangle[3].tolist() == [0.0] * 4 and rotated[3] == 0.0
    np.testing.assert_allclose(triangle.T @ triangle, x.T @ x, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(triangle.T @ rotated, x.T @ z, rtol=1e-12, atol=1e-10)
    # Reversing the row order changes the rotations of a plain QR, not the canonical form.
    reversed_triangle, reversed_rotated = site_factor(x[::-1], z[::-1]).canonical()
    np.testing.assert_allclose(reversed_triangle, triangle, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(reversed_rotated, rotated, rtol=1e-12, atol=1e-12)


def test_a_site_with_fewer_rows_than_terms_and_one_with_none() -> None:
    rng = np.random.default_rng(3)
    x, z = design(rng, 3), rng.normal(size=3)
    triangle, _ = site_factor(x, z).canonical()
    assert triangle.shape == (4, 4)
    np.testing.assert_allclose(triangle.T @ triangle, x.T @ x, rtol=1e-12)
    empty, nothing = SiteFactor(4).canonical()
    assert not empty.any() and not nothing.any()


def test_the_pooled_factor_solves_and_inverts_like_numpy_on_the_stacked_rows() -> None:
    rng = np.random.default_rng(4)
    parts = [(design(rng, n), rng.normal(size=n)) for n in (120, 40, 300)]
    blocks = [site_factor(x, z).canonical() for x, z in parts]
    factor = PooledFactor(blocks, ["intercept", "a", "b", "c"], "test")

    x = np.vstack([p[0] for p in parts])
    z = np.concatenate([p[1] for p in parts])
    expected, *_ = np.linalg.lstsq(x, z, rcond=None)
    np.testing.assert_allclose(factor.solution(), expected, rtol=1e-11)
    np.testing.assert_allclose(factor.inverse_diagonal(), np.diag(np.linalg.inv(x.T @ x)), rtol=1e-10)
    matrix = factor.triangle
    np.testing.assert_array_equal(unpack_upper(pack_upper(matrix), 4), matrix)


def test_the_pooled_factor_names_a_collinear_term_and_a_term_without_rows() -> None:
    x = np.column_stack([np.ones(50), np.arange(50.0), np.arange(50.0) * 3 + 1, np.zeros(50)])
    z = np.arange(50.0) % 7
    halves = [site_factor(x[:25, :3], z[:25]).canonical(), site_factor(x[25:, :3], z[25:]).canonical()]
    with pytest.raises(InvalidInput, match=r"term 'c' is \(almost\) a linear combination .*\('one', 'b'\)"):
        PooledFactor(halves, ["one", "b", "c"], "the predictors are collinear")
    with pytest.raises(InvalidInput, match="term 'd' is zero in every row"):
        PooledFactor([site_factor(x, z).canonical()], ["one", "b", "c", "d"], "here")


def test_rows_are_factored_in_blocks_with_the_same_result_as_one_qr() -> None:
    rng = np.random.default_rng(5)
    x, z = design(rng, 40_000), rng.normal(size=40_000)
    triangle, rotated = site_factor(x, z, chunk=40_000).canonical()
    whole = np.linalg.qr(np.column_stack([x, z]), mode="r")
    signs = np.sign(np.diag(whole)[:4])
    np.testing.assert_allclose(triangle, whole[:4, :4] * signs[:, None], rtol=1e-11, atol=1e-7)
    np.testing.assert_allclose(rotated, whole[:4, 4] * signs, rtol=1e-11)
