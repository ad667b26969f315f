"""`custos demo`: a federated study from provisioning to results, with real processes.

A researcher at a university studies patients of three hospitals. Each hospital's gateway holds its own
synthetic patients and a policy that grants the university the stats, glm and fedavg models on six
columns. The researcher lists the datasets, looks at mock rows, creates and activates a compute spec,
runs two stats jobs and reads the pooled results; fits an exact federated linear regression; trains a
classifier with FedAvg (its metrics come back, its weights stay: the policies do not release models);
then asks for postcodes and is refused by the policy.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console

from custos.core.errors import Conflict, CustosError, InvalidInput, PermissionDenied
from custos.demo.sites import (
    DATASET,
    FEDAVG_MODEL,
    GLM_MODEL,
    GRANTED_COLUMNS,
    HOSPITALS,
    RESEARCHER,
    STATS_MODEL,
    dataset_refs,
    demo_gateways,
    demo_users,
)
from custos.local.cluster import Cluster
from custos.sdk import Client, Result
from custos.sdk.tables import datasets_table, frame_table, section_table

MARKER = ".custos-demo"
JOB_TIMEOUT = 120

STUDY: list[tuple[str, dict[str, Any]]] = [
    (
        "counts and means, age histogram, median systolic blood pressure, smokers",
        {
            "columns": ["age", "bmi", "systolic_bp", "smoker"],
            "statistics": ["count", "mean", "std"],
            "histograms": [{"column": "age", "edges": [18, 30, 45, 60, 75, 96]}],
            "quantiles": [{"column": "systolic_bp", "probs": [0.5]}],
        },
    ),
    (
        "mean BMI by sex",
        {"columns": ["bmi"], "statistics": ["count", "mean"], "group_by": "sex"},
    ),
]


# Each model's spec: its columns, and the job the researcher runs with it.
MODELLING: list[tuple[str, str, list[str], dict[str, Any]]] = [
    (
        "linear regression of systolic blood pressure (glm: exact Newton steps over the sites)",
        GLM_MODEL,
        ["systolic_bp", "age", "bmi", "smoker", "sex"],
        {
            "family": "gaussian",
            "outcome": "systolic_bp",
            "predictors": ["age", "bmi", "smoker", "sex"],
            "levels": {"smoker": ["no", "yes"], "sex": ["F", "M"]},
        },
    ),
    (
        "a classifier for smoking, trained where the data is (fedavg: 5 rounds, NumPy MLP)",
        FEDAVG_MODEL,
        ["systolic_bp", "age", "bmi", "smoker"],
        {
            "model": "mlp",
            "hidden": 8,
            "features": ["systolic_bp", "age", "bmi"],
            "label": "smoker",
            "positive": "yes",
            "rounds": 5,
            "batch_size": 256,
            "learning_rate": 0.1,
            "holdout": 0.2,
            "seed": 7,
        },
    ),
]
# Sections of a FedAvg result that the demo prints (the rest is in `custos job result`).
SHOWN_SECTIONS = {"coefficients", "fit", "history", "final", "result"}


@dataclass(frozen=True)
class DemoReport:
    workdir: Path
    datasets: list[str]
    spec_id: str
    results: list[Result]
    refusal: str
    elapsed: float


def prepare_workdir(workdir: Path) -> Path:
    """Wipe and recreate `workdir`, but only if it is empty or an earlier demo made it."""
    if workdir.exists():
        if not workdir.is_dir():
            raise InvalidInput(f"--workdir {workdir} is a file; pass a folder for the demo to use")
        if any(workdir.iterdir()) and not (workdir / MARKER).is_file():
            raise InvalidInput(
                f"--workdir {workdir} is not empty and was not made by `custos demo`; "
                "pass a new folder, or an old demo folder to reuse"
            )
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / MARKER).write_text("made by `custos demo`; wiped by the next run\n", encoding="utf-8")
    return workdir


def request_denied_spec(client: Client, console: Console) -> str:
    """Ask for postcodes, which no hospital grants; return the refusal. Raise if nothing refuses."""
    columns = ["age", "postcode"]
    console.print(f"  spec over {', '.join(dataset_refs())} with columns {', '.join(columns)}", markup=False)
    try:
        spec = client.create_spec("postcode-lookup", STATS_MODEL, dataset_refs(), columns)
    except PermissionDenied as exc:
        return f"refused by the orchestrator: {exc}"
    try:
        client.activate_spec(spec.id, timeout=JOB_TIMEOUT)
    except Conflict as exc:
        return f"refused by the gateways: {exc}"
    raise CustosError(
        f"compute spec {spec.id} asks for postcode, which no policy grants, yet it was activated"
    )


@contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit while the demo runs, so its cleanup stops the processes it started
    (they run in sessions of their own and would outlive an abruptly killed demo)."""

    def handle(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_demo(
    workdir: Path, *, rows: int = 100_000, console: Console | None = None, keep_running: bool = False
) -> DemoReport:
    """Run the study; with `keep_running`, give every demo user a password and leave the deployment
    up, its portal open, until Ctrl-C (or SIGTERM)."""
    with sigterm_as_exit():
        return _run(workdir, rows, console, keep_running)


def open_portal(cluster: Cluster, console: Console) -> dict[str, str]:
    """A fresh password for every demo user (12+ characters, as the portal requires); printed."""
    passwords = {user.name: secrets.token_urlsafe(12) for user in cluster.users}
    for name, password in passwords.items():
        with cluster.client(name) as client:
            client.set_password(password)
    for name, password in passwords.items():
        user = next(u for u in cluster.users if u.name == name)
        console.print(f"  {name:<10} {password}   ({user.role} of {user.org})", markup=False)
    return passwords


def _run(workdir: Path, rows: int, console: Console | None, keep_running: bool) -> DemoReport:
    started = time.monotonic()
    out = console or Console(highlight=False)

    def step(text: str) -> None:
        out.print(f"\n[bold cyan]▸ {text}[/bold cyan]  [dim]{time.monotonic() - started:5.1f} s[/dim]")

    workdir = prepare_workdir(workdir.resolve())
    step(f"generating {rows:,} synthetic patients at each of {len(HOSPITALS)} hospitals")
    gateways = demo_gateways(rows)
    cluster = Cluster(workdir, gateways=gateways, users=demo_users(), project="custos-demo")
    step(
        f"provisioning kits, starting an orchestrator and {len(gateways)} gateways (logs: {cluster.logs_dir})"
    )
    results: list[Result] = []
    with cluster, cluster.client(RESEARCHER) as alice:
        me = alice.me()
        out.print(f"  orchestrator at {cluster.url}; pids {cluster.pids()}", markup=False)
        step(f"signed in as {me.name} ({me.role}, {me.org}); the published datasets")
        datasets = alice.datasets()
        out.print(datasets_table(datasets))
        mock = alice.dataset(f"{HOSPITALS[0][0]}/{DATASET}").mock
        out.print(
            frame_table(f"{HOSPITALS[0][0]}/{DATASET}: mock rows to prototype on (not real)", mock.head(5))
        )

        step(f"creating a compute spec: {STATS_MODEL} on {', '.join(GRANTED_COLUMNS)}")
        spec = alice.create_spec("cohort-statistics", STATS_MODEL, dataset_refs(), GRANTED_COLUMNS)
        spec = alice.activate_spec(spec.id, timeout=JOB_TIMEOUT)
        out.print(
            f"  spec {spec.id} is {spec.state}: every gateway checked it against its policy", markup=False
        )

        for title, params in STUDY:
            step(f"job: {title}")
            job = alice.submit_job(spec.id, params)
            alice.wait_job(job.id, timeout=JOB_TIMEOUT, progress=True)
            result = alice.job_result(job.id)
            results.append(result)
            out.print(f"  job {job.id}: pooled over {len(gateways)} sites", markup=False)
            for section in result.sections():
                if section.rows:
                    out.print(section_table(section))

        for title, model, columns, params in MODELLING:
            step(f"job: {title}")
            modelling = alice.create_spec(model.split("@")[0], model, dataset_refs(), columns)
            alice.activate_spec(modelling.id, timeout=JOB_TIMEOUT)
            job = alice.submit_job(modelling.id, params)
            alice.wait_job(job.id, timeout=JOB_TIMEOUT, progress=True)
            result = alice.job_result(job.id)
            results.append(result)
            for section in result.sections():
                if section.rows and section.title.split(" ")[0] in SHOWN_SECTIONS:
                    out.print(section_table(section))

        step("asking for a column the policies do not grant")
        refusal = request_denied_spec(alice, out)
        out.print(f"  [red]✗[/red] {refusal}", highlight=False)
        root_ca = cluster.kit_dir(RESEARCHER) / "rootCA.pem"
        if keep_running:
            step("the portal: sign in as any of these users (Ctrl-C stops the deployment)")
            open_portal(cluster, out)
            out.print(f"\n  portal at {cluster.url}/", markup=False)
            out.print(
                f"  (the browser warns: the orchestrator's certificate is signed by the project's own root "
                f"CA, {root_ca})",
                markup=False,
            )
            try:
                signal.pause()
            except KeyboardInterrupt:
                out.print("")
        step("stopping the gateways and the orchestrator")
    elapsed = time.monotonic() - started
    out.print(
        f"\n[bold green]demo finished in {elapsed:.1f} s[/bold green]; kits, data and logs are in {workdir}"
    )
    if not keep_running:
        out.print(
            f"the portal was at {cluster.url}/ ; `custos demo --keep-running` leaves it up, with passwords",
            markup=False,
        )
    return DemoReport(
        workdir=workdir,
        datasets=[f"{d.gateway}/{d.name}" for d in datasets],
        spec_id=spec.id,
        results=results,
        refusal=refusal,
        elapsed=elapsed,
    )
