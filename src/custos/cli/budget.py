"""`custos budget show`, and the lines `custos job submit --dry-run` prints: the privacy budget as
the orchestrator mirrors it from the gateways' ledgers (the gateways have the last word)."""

from __future__ import annotations

from collections.abc import Sequence

import typer
from rich import box
from rich.table import Table

from custos.cli.options import JsonOption, KitOption, open_client
from custos.cli.output import echo, print_json, stdout
from custos.core.wire import BudgetPublic, DatasetCostPreview, JobPreview
from custos.sdk.tables import add_row

app = typer.Typer(
    help="Show the privacy budget spent on datasets under differential privacy.", no_args_is_help=True
)


def _amount(symbol: str, value: float, cap: float) -> str:
    return f"{symbol}={value:.2f} of {cap:.2f}" if symbol == "ε" else f"{symbol}={value:g} of {cap:g}"


def preview_line(cost: DatasetCostPreview) -> str:
    """One dataset of a dry run, e.g.
    `site-a/patients: would spend ε=0.50 δ=0; remaining after: ε=2.50 of 3.00`."""
    if not cost.dp:
        return f"{cost.dataset}: no differential privacy: no budget is spent"
    assert cost.remaining_epsilon is not None and cost.cap_epsilon is not None
    remaining_delta, cap_delta = cost.remaining_delta or 0.0, cost.cap_delta or 0.0
    spend = f"{cost.dataset}: would spend ε={cost.epsilon:.2f} δ={cost.delta:g}"
    if cost.would_exceed:
        left = _amount("ε", cost.remaining_epsilon, cost.cap_epsilon)
        if cap_delta > 0:
            left += f", {_amount('δ', remaining_delta, cap_delta)}"
        line = f"{spend}; only {left} remains: the gateway would refuse this job"
    else:
        after = _amount("ε", max(cost.remaining_epsilon - cost.epsilon, 0.0), cost.cap_epsilon)
        if cap_delta > 0:
            after += f", {_amount('δ', max(remaining_delta - cost.delta, 0.0), cap_delta)}"
        line = f"{spend}; remaining after: {after}"
    if not cost.mirrored:
        line += " (nothing spent is mirrored yet: the full cap)"
    return line


def print_preview(preview: JobPreview, json: bool) -> None:
    if json:
        print_json(preview)
    else:
        for cost in preview.datasets:
            echo(preview_line(cost))
    echo("dry run: nothing was submitted", err=True)


def budget_table(rows: Sequence[BudgetPublic]) -> Table:
    table = Table(title="privacy budget", box=box.SIMPLE_HEAD, title_justify="left")
    columns = (
        "dataset",
        "spent by",
        "spent ε",
        "cap ε",
        "remaining ε",
        "spent δ",
        "cap δ",
        "updated",
        "reconciled",
    )
    for column in columns:
        table.add_column(column, justify="right" if "ε" in column or "δ" in column else "left")
    for r in rows:
        add_row(
            table,
            r.dataset,
            f"{r.kind} {r.subject}",
            f"{r.spent_epsilon:.2f}",
            f"{r.cap_epsilon:.2f}",
            f"{r.remaining_epsilon:.2f}",
            f"{r.spent_delta:g}",
            f"{r.cap_delta:g}",
            r.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
            r.reconciled_at.strftime("%Y-%m-%d %H:%M:%S") if r.reconciled_at else "-",
        )
    return table


@app.command("show")
def show_budget(kit: KitOption, json: JsonOption = False) -> None:
    """What you and your org have spent per dataset, as the gateways last reported it."""
    with open_client(kit) as client:
        rows = client.budget()
    if json:
        print_json(rows)
    elif not rows:
        echo("no privacy budget has been spent on the datasets you can see")
    else:
        stdout().print(budget_table(rows))
        for line in lag_lines(rows):
            echo(line)


def lag_lines(rows: Sequence[BudgetPublic]) -> list[str]:
    """One line per dataset whose mirror may be behind its gateway's ledger, e.g. `site-a/patients:
    the mirror may be behind site-a's ledger by up to ε=1.00 (1 task leased since its last report at
    10:02; site-a offline since 10:02)`."""
    lines, seen = [], set()
    for r in rows:
        if r.dataset in seen or (r.behind_tasks == 0 and r.site_offline_since is None):
            continue
        seen.add(r.dataset)
        gateway = r.dataset.partition("/")[0]
        reported = f"{r.reconciled_at:%Y-%m-%d %H:%M} UTC" if r.reconciled_at else "never"
        why = []
        if r.behind_tasks:
            why.append(f"{r.behind_tasks} DP task(s) leased since its last report ({reported})")
        if r.site_offline_since is not None:
            why.append(f"{gateway} offline since {r.site_offline_since:%Y-%m-%d %H:%M} UTC")
        amount = f" by up to ε={r.behind_epsilon:.2f}" if r.behind_tasks else ""
        lines.append(f"{r.dataset}: the mirror may be behind {gateway}'s ledger{amount}: {'; '.join(why)}")
    return lines
