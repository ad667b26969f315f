"""The privacy budget per dataset in the portal: for each mirror row the signed-in user may see (their
own spend on each dataset, their org's; an org admin every row of its org's datasets), spent and
remaining ε over time as a chart, and the table of the mirror's changes behind it (each with the job
or ledger report that moved it). Drawn from `budget_history`; every name is inert text."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from custos.core.clock import utcnow
from custos.core.inert import inert
from custos.orchestrator.api.context import PAGE_TAG, PageCallerDep, ServicesDep
from custos.orchestrator.portal.charts import LineChart, line_chart
from custos.orchestrator.portal.render import page
from custos.orchestrator.tables import BudgetHistory

router = APIRouter(tags=[PAGE_TAG], include_in_schema=False)
SHOWN = 1000  # the newest changes a page shows


@dataclass(frozen=True)
class Series:
    """One mirror row's changes (a researcher's or an org's spend on one dataset) and its chart."""

    dataset: str
    who: str
    chart: LineChart
    changes: list[dict[str, Any]]


def _change(row: BudgetHistory) -> dict[str, Any]:
    return {
        "time": row.at,
        "spent_epsilon": row.spent_epsilon,
        "remaining_epsilon": max(row.cap_epsilon - row.spent_epsilon, 0.0),
        "cap_epsilon": row.cap_epsilon,
        "spent_delta": row.spent_delta,
        "cap_delta": row.cap_delta,
        "cause": inert(row.cause),
    }


def _steps(changes: list[BudgetHistory], now: datetime) -> tuple[list[float], list[float], list[float]]:
    """Hours since the first change, with spent and remaining ε as steps: each figure holds until the
    next change, and the last until `now`."""
    start = changes[0].at
    xs: list[float] = []
    spent: list[float] = []
    remaining: list[float] = []
    for i, change in enumerate(changes):
        hours = (change.at - start).total_seconds() / 3600
        if i:  # the previous figure up to this change
            xs.append(hours)
            spent.append(spent[-1])
            remaining.append(remaining[-1])
        xs.append(hours)
        spent.append(change.spent_epsilon)
        remaining.append(max(change.cap_epsilon - change.spent_epsilon, 0.0))
    xs.append(max((now - start).total_seconds() / 3600, xs[-1]))
    spent.append(spent[-1])
    remaining.append(remaining[-1])
    return xs, spent, remaining


def budget_series(rows: list[BudgetHistory], now: datetime) -> list[Series]:
    """The changes grouped per mirror row (dataset, then the org's row before its researchers'), each
    with a chart of spent and remaining ε, from 0 to the cap, against hours since its first change."""
    groups: dict[tuple[str, str, str], list[BudgetHistory]] = {}
    for row in rows:
        groups.setdefault((row.dataset, row.kind, row.subject), []).append(row)
    out = []
    for (dataset, kind, subject), changes in sorted(
        groups.items(), key=lambda g: (g[0][0], g[0][1] != "org", g[0][2])
    ):
        who = inert(f"{subject} (organisation)" if kind == "org" else subject)
        name = inert(dataset)
        xs, spent, remaining = _steps(changes, now)
        top = max(max(c.cap_epsilon for c in changes), max(spent), 1e-9)
        chart = line_chart(
            f"ε on {name} for {who} (hours since the first change)",
            xs,
            [("spent ε", spent), ("remaining ε", remaining)],
            y_range=(0.0, top),
        )
        out.append(Series(name, who, chart, [_change(c) for c in changes]))
    return out


@router.get("/budget", response_class=HTMLResponse)
def budget(request: Request, caller: PageCallerDep, services: ServicesDep) -> HTMLResponse:
    now = utcnow()
    series = services.run(lambda s: budget_series(services.budget.history(s, caller.identity, SHOWN), now))
    return page(request, "budget.html", caller, series=series, shown=SHOWN)
