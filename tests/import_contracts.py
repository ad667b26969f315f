"""The project's own import-linter contract type, registered in pyproject.toml ([tool.importlinter]).

`acyclic_modules`: no import cycle between any two modules under `packages`. import-linter's own
`acyclic_siblings` looks at the children of each package, each subpackage taken as a whole, so it
finds cycles between packages too; but it leaves out the package's own `__init__`, so a submodule
that imports its package while the package imports it is a cycle it does not see. This contract
looks at the module graph itself: its strongly connected components (Tarjan's algorithm).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import grimp
from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


class AcyclicModulesContract(Contract):
    type_name = "acyclic_modules"

    packages = fields.ListField(subfield=fields.StringField())

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        roots: list[str] = self.packages  # type: ignore[assignment]
        modules = {m for root in roots for m in {root, *graph.find_descendants(root)}}
        cycles = sorted(sorted(c) for c in strongly_connected(modules, graph) if len(c) > 1)
        imports = {
            tuple(cycle): sorted(
                (importer, imported, _lines(graph, importer, imported))
                for importer in cycle
                for imported in graph.find_modules_directly_imported_by(importer) & set(cycle)
            )
            for cycle in cycles
        }
        return ContractCheck(kept=not cycles, metadata={"cycles": list(imports.items())})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for cycle, imports in check.metadata["cycles"]:
            output.print_error(f"Import cycle between {', '.join(cycle)}:")
            output.new_line()
            for importer, imported, lines in imports:
                output.print_error(f"- {importer} -> {imported} ({lines})", bold=False)
            output.new_line()


def strongly_connected(modules: set[str], graph: grimp.ImportGraph) -> Iterator[set[str]]:
    """The strongly connected components of the import graph restricted to `modules` (Tarjan's
    algorithm, iterative: a long import chain must not hit Python's recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def successors(module: str) -> Iterable[str]:
        return sorted(graph.find_modules_directly_imported_by(module) & modules)

    for start in sorted(modules):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(successors(start)))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            module, pending = work[-1]
            following = next(pending, None)
            if following is not None:
                if following not in index:
                    index[following] = low[following] = len(index)
                    stack.append(following)
                    on_stack.add(following)
                    work.append((following, iter(successors(following))))
                elif following in on_stack:
                    low[module] = min(low[module], index[following])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[module])
            if low[module] == index[module]:
                component: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == module:
                        break
                yield component


def _lines(graph: grimp.ImportGraph, importer: str, imported: str) -> str:
    details = graph.get_import_details(importer=importer, imported=imported)
    return ", ".join(f"l.{d['line_number']}" for d in details) or "line unknown"
