"""Which suppressed cells the published figures determine (`custos.privacy.recovery`): the bridge test
on graph-shaped tables agrees with the null space of the equations, and tables that are not graphs go
to the null space."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import pytest

from custos.privacy.recovery import Equation, _null_space_determined, build_system, determined


@dataclass(eq=False)
class Mark:
    suppressed: bool


def stats_shaped(rng: random.Random) -> list[Equation]:
    """A summary over groups plus a histogram of the same column (each row adding up to the summary's
    cell, each bin over the groups to the all-rows bin), with cells suppressed at random."""
    groups, bins = rng.randint(1, 4), rng.randint(1, 6)
    rate = rng.choice([0.2, 0.4, 0.7])
    counts = [Mark(rng.random() < rate) for _ in range(groups + 1)]
    rows = [[Mark(rng.random() < rate) for _ in range(bins)] for _ in range(groups + 1)]
    equations = [Equation(counts[1:], counts[0])]
    equations += [Equation(row, count) for row, count in zip(rows, counts, strict=True)]
    equations += [Equation([row[k] for row in rows[1:]], rows[0][k]) for k in range(bins)]
    return equations


def by_null_space(equations: list[Equation]) -> list[int]:
    system = build_system(equations)
    return sorted(u for component in system.components for u in _null_space_determined(system, component))


@pytest.mark.parametrize("seed", range(200))
def test_bridges_agree_with_the_null_space(seed: int) -> None:
    equations = stats_shaped(random.Random(seed))
    assert determined(build_system(equations)) == by_null_space(equations)


def test_a_lone_unknown_in_a_line_is_determined_and_a_pair_is_not() -> None:
    a, b, c, total = Mark(True), Mark(False), Mark(False), Mark(False)
    system = build_system([Equation([a, b, c], total)])
    assert [system.unknowns[u] for u in determined(system)] == [a]

    b.suppressed = True
    assert determined(build_system([Equation([a, b, c], total)])) == []


def test_an_unknown_in_three_lines_goes_to_the_null_space() -> None:
    shared, x, y = Mark(True), Mark(True), Mark(True)
    first, second, third = Mark(False), Mark(False), Mark(False)
    # shared + x, shared + y and shared + x + y are published: three independent equations over
    # three unknowns, so all three are determined.
    equations = [Equation([shared, x], first), Equation([shared, y], second), Equation([shared, x, y], third)]
    system = build_system(equations)
    assert len(system.components) == 1
    assert np.linalg.matrix_rank(np.array([[1, 1, 0], [1, 0, 1], [1, 1, 1]])) == 3
    assert determined(system) == [0, 1, 2]

    fourth = Mark(True)  # a fourth unknown in the last line frees them all
    equations[2] = Equation([shared, x, y, fourth], third)
    assert determined(build_system(equations)) == []
