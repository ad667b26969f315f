"""Which suppressed cells the published figures still determine: the exact check behind secondary
suppression (`custos.privacy.sdc.protect_table`).

Each line of a table is an equation: its cells add up to its total. A reader knows every reported
cell, so the unknowns are the suppressed cells, and a suppressed cell is *determined* when every
assignment of the unknowns that satisfies the equations gives it the same value: when the unit vector
of that cell lies in the row space of the equations' coefficients over the unknowns. Only the
coefficients matter, never the values.

The tables the models publish are graphs: each unknown is in at most two lines, with coefficient +1
(a cell) or -1 (a total). Once every line is multiplied by a sign so that each unknown has +1 in one
line and -1 in the other, the coefficients are the incidence matrix of a directed graph whose nodes
are the lines plus one "ground" node (where an unknown in a single line ends), so the solutions of
the equations without constants are its circulations, and an unknown is determined exactly when it
is a bridge. Tables that are not graphs of that kind (an unknown in three lines, or signs that cannot
be made to agree) fall back to a null-space computation (SVD), component by component.

Bounds are not modelled: counts are non-negative integers, so a suppressed cell whose line leaves
exactly 0 to share is known to be 0. Secondary suppression never leaves such a line with a small cell,
because it hides non-zero cells first.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


class Hidden(Protocol):
    @property
    def suppressed(self) -> bool: ...


@dataclass(frozen=True)
class Equation:
    """One line: `cells` add up to `total`."""

    cells: Sequence[Hidden]
    total: Hidden


@dataclass
class Component:
    """Lines (indices into the equations) linked by shared unknowns, and those unknowns."""

    lines: list[int] = field(default_factory=list)
    unknowns: list[int] = field(default_factory=list)


@dataclass
class System:
    """The equations over the unknowns of a table, split into independent components. `ends[u]`
    lists the (line, coefficient) pairs of unknown u."""

    equations: Sequence[Equation]
    unknowns: list[Hidden]
    ends: list[list[tuple[int, int]]]
    components: list[Component]

    def lines_of(self, unknown: int) -> list[int]:
        return [line for line, _ in self.ends[unknown]]


def build_system(equations: Sequence[Equation]) -> System:
    index: dict[int, int] = {}
    unknowns: list[Hidden] = []
    ends: list[list[tuple[int, int]]] = []
    for number, equation in enumerate(equations):
        coefficients: dict[int, int] = {}
        for cell, sign in [*((c, 1) for c in equation.cells), (equation.total, -1)]:
            if not cell.suppressed:
                continue
            if id(cell) not in index:
                index[id(cell)] = len(unknowns)
                unknowns.append(cell)
                ends.append([])
            u = index[id(cell)]
            coefficients[u] = coefficients.get(u, 0) + sign
        for u, coefficient in coefficients.items():
            if coefficient:
                ends[u].append((number, coefficient))
    parent = list(range(len(equations)))

    def root(line: int) -> int:
        while parent[line] != line:
            parent[line] = parent[parent[line]]
            line = parent[line]
        return line

    for u_ends in ends:
        for (a, _), (b, _) in itertools.pairwise(u_ends):
            parent[root(a)] = root(b)
    by_root: dict[int, Component] = {}
    for u, u_ends in enumerate(ends):
        if u_ends:
            by_root.setdefault(root(u_ends[0][0]), Component()).unknowns.append(u)
    for line in range(len(equations)):
        if root(line) in by_root:
            by_root[root(line)].lines.append(line)
    return System(equations, unknowns, ends, list(by_root.values()))


def determined(system: System) -> list[int]:
    """The unknowns (indices into `system.unknowns`) that the equations determine."""
    found: list[int] = []
    for component in system.components:
        as_graph = _graph_bridges(system, component)
        found += as_graph if as_graph is not None else _null_space_determined(system, component)
    return sorted(found)


# --- graphs: bridges -----------------------------------------------------------------------------------


def _signs(system: System, component: Component) -> dict[int, int] | None:
    """A sign per line so that each unknown in two lines has +1 in one and -1 in the other; None when
    the component is not such a graph."""
    sign: dict[int, int] = {}
    neighbours: dict[int, list[tuple[int, int]]] = {line: [] for line in component.lines}
    for u in component.unknowns:
        u_ends = system.ends[u]
        if len(u_ends) > 2 or any(abs(c) != 1 for _, c in u_ends):
            return None
        if len(u_ends) == 2:
            (a, ca), (b, cb) = u_ends
            if a == b:
                return None
            relation = -ca * cb  # sign[b] = relation * sign[a]
            neighbours[a].append((b, relation))
            neighbours[b].append((a, relation))
    for start in component.lines:
        if start in sign:
            continue
        sign[start] = 1
        stack = [start]
        while stack:
            line = stack.pop()
            for other, relation in neighbours[line]:
                want = relation * sign[line]
                if other not in sign:
                    sign[other] = want
                    stack.append(other)
                elif sign[other] != want:
                    return None
    return sign


def _graph_bridges(system: System, component: Component) -> list[int] | None:
    if _signs(system, component) is None:
        return None
    ground = -1
    adjacent: dict[int, list[tuple[int, int]]] = {line: [] for line in component.lines}
    adjacent[ground] = []
    for u in component.unknowns:
        u_ends = system.ends[u]
        a = u_ends[0][0]
        b = u_ends[1][0] if len(u_ends) == 2 else ground
        adjacent[a].append((b, u))
        adjacent[b].append((a, u))
    return _bridges(adjacent)


def _bridges(adjacent: dict[int, list[tuple[int, int]]]) -> list[int]:
    """Edges (by id) on no cycle of a multigraph, by an iterative depth-first search (Tarjan)."""
    order: dict[int, int] = {}
    low: dict[int, int] = {}
    bridges: list[int] = []
    for start in adjacent:
        if start in order:
            continue
        order[start] = low[start] = len(order)
        stack: list[tuple[int, int, int]] = [(start, -1, 0)]  # node, edge it was entered by, next index
        while stack:
            node, via, position = stack[-1]
            if position < len(adjacent[node]):
                stack[-1] = (node, via, position + 1)
                other, edge = adjacent[node][position]
                if edge == via:
                    continue
                if other in order:
                    low[node] = min(low[node], order[other])
                else:
                    order[other] = low[other] = len(order)
                    stack.append((other, edge, 0))
                continue
            stack.pop()
            if stack:
                parent = stack[-1][0]
                low[parent] = min(low[parent], low[node])
                if low[node] > order[parent]:
                    bridges.append(via)
    return bridges


# --- anything else: the null space ------------------------------------------------------------------------


def _null_space_determined(system: System, component: Component) -> list[int]:
    # Imported here: parsing a policy (the orchestrator's start) needs no NumPy.
    import numpy as np

    rows = {line: i for i, line in enumerate(component.lines)}
    columns = {u: j for j, u in enumerate(component.unknowns)}
    matrix = np.zeros((len(rows), len(columns)))
    for u in component.unknowns:
        for line, coefficient in system.ends[u]:
            matrix[rows[line], columns[u]] += coefficient
    _, singular, vt = np.linalg.svd(matrix, full_matrices=True)
    tolerance = max(matrix.shape) * np.finfo(float).eps * (singular[0] if singular.size else 0.0)
    rank = int((singular > tolerance).sum())
    null = vt[rank:]
    if null.shape[0] == 0:
        return list(component.unknowns)
    weight = np.linalg.norm(null, axis=0)
    return [u for u in component.unknowns if weight[columns[u]] < 1e-9]
