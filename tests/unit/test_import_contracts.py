"""The project's `acyclic_modules` import contract finds cycles in the module graph, a package's own
`__init__` included, and names the imports that make them."""

from __future__ import annotations

import grimp
from tests.import_contracts import AcyclicModulesContract


def graph_of(*imports: tuple[str, str]) -> grimp.ImportGraph:
    graph = grimp.ImportGraph()
    graph.add_module("pk")
    for importer, imported in imports:
        graph.add_import(importer=importer, imported=imported)
    return graph


def check(graph: grimp.ImportGraph) -> tuple[bool, list[tuple[tuple[str, ...], list[tuple[str, str, str]]]]]:
    contract = AcyclicModulesContract("no cycles", session_options={}, contract_options={"packages": ["pk"]})
    result = contract.check(graph, verbose=False)
    return result.kept, result.metadata["cycles"]


def test_a_graph_without_cycles_is_kept() -> None:
    kept, cycles = check(graph_of(("pk", "pk.a"), ("pk.a", "pk.b"), ("pk.sub.c", "pk.a"), ("pk", "pk.sub.c")))
    assert kept
    assert cycles == []


def test_a_submodule_that_imports_its_own_package_is_a_cycle() -> None:
    kept, cycles = check(graph_of(("pk", "pk.sub"), ("pk.sub", "pk.sub.a"), ("pk.sub.a", "pk.sub")))
    assert not kept
    assert [cycle for cycle, _ in cycles] == [("pk.sub", "pk.sub.a")]


def test_each_cycle_is_reported_with_the_imports_inside_it() -> None:
    kept, cycles = check(
        graph_of(
            ("pk.a", "pk.b"), ("pk.b", "pk.c"), ("pk.c", "pk.a"),  # one cycle of three
            ("pk.c", "pk.d"),  # leaves the cycle: not part of it
            ("pk.x", "pk.y"), ("pk.y", "pk.x"),  # a second cycle
        )
    )  # fmt: skip
    assert not kept
    assert cycles == [
        (("pk.a", "pk.b", "pk.c"), [("pk.a", "pk.b", "line unknown"), ("pk.b", "pk.c", "line unknown"),
                                    ("pk.c", "pk.a", "line unknown")]),
        (("pk.x", "pk.y"), [("pk.x", "pk.y", "line unknown"), ("pk.y", "pk.x", "line unknown")]),
    ]  # fmt: skip


def test_modules_outside_the_packages_are_left_out() -> None:
    kept, _ = check(graph_of(("pk.a", "other.b"), ("other.b", "pk.a")))
    assert kept
