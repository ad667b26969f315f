from __future__ import annotations

import numpy as np
import pytest

from custos.computations.columns import squared_deviations
from custos.computations.stats.site import histogram_counts


@pytest.mark.parametrize("seed", range(5))
def test_histogram_counts_match_numpy_histogram(seed: int) -> None:
    rng = np.random.default_rng(seed)
    edges = np.unique(np.round(rng.uniform(-5, 5, size=rng.integers(2, 12)), 1))
    if len(edges) < 2:
        edges = np.array([-1.0, 1.0])
    values = np.concatenate([rng.normal(0, 3, 5_000), edges, edges, [edges[0] - 1, edges[-1] + 1]])
    values = np.round(values, 1)  # plenty of values exactly on an edge
    *bins, outside = histogram_counts(values, edges)
    assert bins == np.histogram(values, bins=edges)[0].tolist()
    assert outside == int(((values < edges[0]) | (values > edges[-1])).sum()) > 0


def test_squared_deviations_match_the_direct_sum() -> None:
    values = np.random.default_rng(1).normal(50, 10, 3_000_000)
    mean = float(values.mean())
    assert squared_deviations(values, mean) == pytest.approx(float(np.square(values - mean).sum()), rel=1e-12)
