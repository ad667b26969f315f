"""A developer's deployment in one call: `custos.launch()` starts an orchestrator and N gateways on
loopback, each gateway with synthetic patients and a policy granting the university's researcher the
stats, glm and fedavg models, and returns a `Deployment` handle (URL, a client per user, `land()`).

    import custos
    dev = custos.launch(n_gateways=3)          # folder .custos-dev
    alice = dev.client("alice")
    ...
    dev.land()

The deployment lives in its folder (kits, data, state, logs; `deployment.yaml` says what it is,
`processes.json` which processes run it). A second launch on the same folder is the same deployment:
the same kits and state; the processes that are still up (a launch that did not land) are taken over
by PID, those that are gone are started again. It is built on `custos.local.cluster.Cluster`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from custos.core.errors import InvalidInput
from custos.local.cluster import Cluster, GatewaySetup, UserSetup
from custos.local.process import runs_as, stop_pid
from custos.local.world import RESEARCHER, Site, hospital_gateways, study_users
from custos.sdk import Client

# A process an earlier launch started: its PID and command line.
Recorded = tuple[int, list[str]]

DEFAULT_FOLDER = Path(".custos-dev")
DEPLOYMENT_FILE = "deployment.yaml"
PROCESSES_FILE = "processes.json"
MAX_GATEWAYS = 16


class DeploymentRecord(BaseModel):
    """What `deployment.yaml` records: enough to bring the same deployment back."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["custos-dev"] = "custos-dev"
    project: str = "custos-dev"
    n_gateways: int = Field(ge=1, le=MAX_GATEWAYS)
    rows: int = Field(ge=100)

    def sites(self) -> list[Site]:
        """Site i: gateway `site-i` of org `hospital-i`."""
        return [(f"site-{i}", f"hospital-{i}") for i in range(1, self.n_gateways + 1)]

    def gateways(self, tables: bool) -> list[GatewaySetup]:
        """Each site's gateway with a `patients` dataset; without `tables` (a reload: the data is on
        disk already) the datasets carry an empty table."""
        return hospital_gateways(self.sites(), self.rows, tables=tables)

    def users(self) -> list[UserSetup]:
        return study_users(self.sites())


class Deployment:
    """A launched deployment: its URL, a signed-in client per user, and `land()` to stop it. Also a
    context manager that lands on exit."""

    def __init__(self, cluster: Cluster, record: DeploymentRecord, adopted: dict[str, Recorded]) -> None:
        self.cluster = cluster
        self.record = record
        self.folder = cluster.work_dir
        # Processes an earlier launch started and this one took over, by name.
        self._adopted = adopted
        self._clients: dict[str, Client] = {}
        self.reloaded = False

    @property
    def url(self) -> str:
        return self.cluster.url

    @property
    def portal_url(self) -> str:
        return f"{self.cluster.url}/"

    @property
    def users(self) -> list[UserSetup]:
        return list(self.cluster.users)

    @property
    def datasets(self) -> list[str]:
        return [f"{g.name}/{d.name}" for g in self.cluster.gateways for d in g.datasets]

    def kit_dir(self, user: str) -> Path:
        return self.cluster.kit_dir(user)

    def client(self, user: str = RESEARCHER) -> Client:
        """`user`'s client, signed in with their kit; one per user, closed by land()."""
        if not any(u.name == user for u in self.cluster.users):
            names = ", ".join(u.name for u in self.cluster.users)
            raise InvalidInput(f"no user {user!r} in this deployment; its users are {names}")
        if user not in self._clients:
            self._clients[user] = self.cluster.client(user)
        return self._clients[user]

    @property
    def clients(self) -> dict[str, Client]:
        """A signed-in client for every user, by name."""
        return {u.name: self.client(u.name) for u in self.cluster.users}

    def pids(self) -> dict[str, int]:
        adopted = {name: pid for name, (pid, argv) in self._adopted.items() if runs_as(pid, argv)}
        return {**adopted, **self.cluster.pids()}

    def land(self) -> None:
        """Stop every process of the deployment, gateways first; the folder (kits, data, state) stays,
        for the next launch. Safe to call more than once."""
        self._clients.clear()
        self.cluster.stop()
        for name in sorted(self._adopted, key=lambda n: n == "orchestrator"):
            pid, argv = self._adopted[name]
            stop_pid(pid, argv, self.cluster.stop_timeout)
        self._adopted = {}
        (self.folder / PROCESSES_FILE).unlink(missing_ok=True)

    def record_processes(self) -> None:
        """Write which processes run the deployment, so the next launch finds them again by PID."""
        entries: dict[str, dict[str, Any]] = {
            name: {"pid": pid, "argv": argv} for name, (pid, argv) in self._adopted.items()
        }
        for name in self.cluster.pids():
            process = self.cluster.process(name)
            if process.popen is not None:
                entries[name] = {"pid": process.popen.pid, "argv": process.argv}
        (self.folder / PROCESSES_FILE).write_text(json.dumps(entries, indent=1), encoding="utf-8")

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.land()

    def __repr__(self) -> str:
        return f"<Deployment {self.url} gateways={len(self.cluster.gateways)} folder={self.folder}>"


def launch(
    n_gateways: int = 3,
    *,
    folder: Path | str = DEFAULT_FOLDER,
    rows: int = 1000,
    startup_timeout: float = 60,
) -> Deployment:
    """Start (or bring back) the deployment in `folder`: an orchestrator and `n_gateways` gateways with
    `rows` synthetic patients each. A folder that holds a deployment already is reloaded as it is."""
    work_dir = Path(folder).expanduser().resolve()
    record_file = work_dir / DEPLOYMENT_FILE
    wanted = _record(n_gateways, rows)
    if record_file.is_file():
        record = _load_record(record_file)
        if record.n_gateways != n_gateways:
            raise InvalidInput(
                f"{work_dir} holds a deployment of {record.n_gateways} gateway(s), not {n_gateways}: "
                f"pass n_gateways={record.n_gateways}, or another folder for a new deployment"
            )
        return _reload(work_dir, record, startup_timeout)
    if work_dir.exists() and (not work_dir.is_dir() or any(work_dir.iterdir())):
        raise InvalidInput(
            f"{work_dir} is not empty and holds no {DEPLOYMENT_FILE}: pass a new folder for a deployment"
        )
    work_dir.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(
        work_dir,
        gateways=wanted.gateways(tables=True),
        users=wanted.users(),
        project=wanted.project,
        startup_timeout=startup_timeout,
    )
    try:
        cluster.start()
    except BaseException:
        # The folder was empty: leave it so, not half a deployment the next launch would refuse.
        for child in work_dir.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise
    record_file.write_text(yaml.safe_dump(wanted.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
    deployment = Deployment(cluster, wanted, {})
    deployment.record_processes()
    return deployment


def _record(n_gateways: int, rows: int) -> DeploymentRecord:
    try:
        return DeploymentRecord(n_gateways=n_gateways, rows=rows)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise InvalidInput(f"{field}: {first['msg']}") from None


def _load_record(path: Path) -> DeploymentRecord:
    try:
        return DeploymentRecord.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise InvalidInput(f"{path} is not a deployment file of `custos.launch`: {exc}") from None


def _reload(work_dir: Path, record: DeploymentRecord, startup_timeout: float) -> Deployment:
    cluster = Cluster(
        work_dir,
        gateways=record.gateways(tables=False),
        users=record.users(),
        project=record.project,
        startup_timeout=startup_timeout,
    )
    adopted = {name: entry for name, entry in _read_processes(work_dir).items() if runs_as(*entry)}
    if "orchestrator" not in adopted:
        # Gateways left without their orchestrator are restarted with it, so that all run one code.
        for pid, argv in adopted.values():
            stop_pid(pid, argv, cluster.stop_timeout)
        adopted = {}
    deployment = Deployment(cluster, record, adopted)
    try:
        cluster.resume(running=set(adopted))
    except BaseException:
        deployment.land()
        raise
    deployment.reloaded = True
    deployment.record_processes()
    return deployment


def _read_processes(work_dir: Path) -> dict[str, Recorded]:
    path = work_dir / PROCESSES_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {
            str(name): (int(entry["pid"]), [str(a) for a in entry["argv"]]) for name, entry in raw.items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}  # none recorded, or not readable: start every process
