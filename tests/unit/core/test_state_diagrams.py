"""The state diagrams in docs/architecture.md are the ones the transition tables produce now."""

from __future__ import annotations

from pathlib import Path

import pytest

from custos.core.state_diagrams import BEGIN, END, block, current_block, main, mermaid, rewrite
from custos.core.states import CODE_REQUEST_MACHINE, MACHINES

ARCHITECTURE = Path(__file__).resolve().parents[3] / "docs" / "architecture.md"


def test_the_architecture_document_shows_the_current_tables() -> None:
    assert current_block(ARCHITECTURE.read_text(encoding="utf-8")) == block(), (
        "docs/architecture.md is stale: run `python -m custos.core.state_diagrams docs/architecture.md`"
    )


def test_a_diagram_draws_starts_transitions_and_ends() -> None:
    assert mermaid(CODE_REQUEST_MACHINE).splitlines() == [
        "stateDiagram-v2",
        "    [*] --> pending",
        "    pending --> approved",
        "    pending --> denied",
        "    approved --> [*]",
        "    denied --> [*]",
    ]


def test_every_transition_of_every_machine_is_drawn() -> None:
    text = block()
    for machine in MACHINES:
        drawn = mermaid(machine)
        assert drawn in text
        for source, targets in machine.transitions.items():
            for target in targets:
                assert f"    {source} --> {target}\n" in drawn + "\n"


def test_rewrite_replaces_only_the_block(tmp_path: Path) -> None:
    doc = tmp_path / "architecture.md"
    doc.write_text(f"# Before\n\n{BEGIN}\nold diagrams\n{END}\n\nAfter.\n", encoding="utf-8")
    assert main([str(doc)]) == 0
    assert doc.read_text(encoding="utf-8") == f"# Before\n\n{block()}\n\nAfter.\n"
    assert rewrite(doc.read_text(encoding="utf-8")) == doc.read_text(encoding="utf-8")


def test_a_document_without_the_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="state-machines:begin"):
        rewrite("# no block here\n")
