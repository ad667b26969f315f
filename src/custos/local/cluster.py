"""A real Custos deployment on loopback: an orchestrator and N gateways, each its own process. The demo
runs one; so do the integration tests and the benchmarks.

    with Cluster(tmp_path, gateways=[GatewaySetup("site-a", "hospital-a", [DatasetSetup(...)])],
                 users=[UserSetup("alice", "university")]) as cluster:
        cluster.client("alice").datasets()

`start()` provisions the project (orchestrator on a free loopback port), writes each site's data,
DATASETS.yaml and policies (signed by an org admin of the site's org, provisioned as `admin@ORG`
unless a user is that org's org_admin), starts `python -m custos.cli orchestrator start` and waits
for /healthz, starts each `custos gateway start`, and waits until every dataset is published.
`resume()` starts the processes of a cluster provisioned before in the same `work_dir` (its port, kits,
sites and state as they are): `custos.local.launch` brings a developer's deployment back with it.
`stop()` ends each process by PID: SIGTERM, then SIGKILL after a bounded wait. Each process logs to
`<work_dir>/logs/<name>.log`; `logs()` gives their tails for a failing test to print.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from custos.core.clock import utcnow
from custos.core.errors import CustosError, InvalidInput
from custos.core.wire import SignedPolicy
from custos.keybroker.vault import create_key_file
from custos.local.balancer import Balancer
from custos.local.process import ManagedProcess, free_port, log_tail
from custos.pki.enrolment import add_participant
from custos.pki.kit import load_kit
from custos.pki.project import ParticipantSpec, load_project
from custos.pki.provision import provision
from custos.policy.asset import AssetPolicy
from custos.policy.signing import sign_policy
from custos.sdk import Client

# Variables a child must not inherit from the shell that starts the cluster: each process gets its own.
_PRIVATE_ENV = ("CUSTOS_DATABASE_URL", "CUSTOS_KIT")


@dataclass(frozen=True)
class DatasetSetup:
    """One dataset of a site. `policy` None writes no policy file: no access for anyone."""

    name: str
    table: pa.Table
    policy: AssetPolicy | Mapping[str, Any] | str | None
    description: str = ""


@dataclass(frozen=True)
class GatewaySetup:
    """One site. `authorization` goes into the gateway's kit as its authorization.yaml; `config`, when
    given, is written as the site's gateway.yaml (caps, sizes, spares)."""

    name: str
    org: str
    datasets: Sequence[DatasetSetup] = ()
    authorization: Mapping[str, Any] | None = None
    config: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class KeyBrokerSetup:
    """A model owner's key broker, served on a free loopback port (docs/confidential.md)."""

    name: str
    org: str


@dataclass(frozen=True)
class UserSetup:
    name: str
    org: str
    role: str = "lead_researcher"


class Cluster:
    """An orchestrator and gateways as real processes, provisioned into `work_dir`."""

    def __init__(
        self,
        work_dir: Path,
        *,
        gateways: Sequence[GatewaySetup],
        users: Sequence[UserSetup],
        keybrokers: Sequence[KeyBrokerSetup] = (),
        database_url: str | None = None,
        project: str = "custos-test",
        startup_timeout: float = 60,
        stop_timeout: float = 10,
        log_format: str = "text",
        log_level: str | None = None,
        metrics: bool = False,
        orchestrators: int = 1,
        workers: int = 1,
        orchestrator_options: Mapping[str, object] | None = None,
    ) -> None:
        if not users:
            raise InvalidInput("a cluster needs at least one user, to check that the datasets are published")
        self.work_dir = Path(work_dir).resolve()
        self.gateways = list(gateways)
        self.users = list(users)
        self.keybrokers = list(keybrokers)
        self.broker_ports: dict[str, int] = {}
        self.database_url = database_url
        self.project = project
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        # The processes' --log-format: "text", or "json" (one object a line).
        self.log_format = log_format
        # The processes' --log-level (their default, info, when None). "debug" logs every request.
        self.log_level = log_level
        # With metrics: the orchestrator serves /metrics on a loopback port of its own too
        # (`metrics_port`), and each gateway writes its metrics file (`metrics_path`).
        self.metrics = metrics
        # More flags of `custos orchestrator start`, e.g. {"long_poll_max_s": 5} (tests shorten waits).
        self.orchestrator_options = dict(orchestrator_options or {})
        self.metrics_port: int | None = None
        # Scale-out: `orchestrators` processes (each with a port and state folder of its own) on the
        # one database, behind a round-robin `Balancer` on the cluster's port; each runs `workers`
        # worker processes. More than one of either needs PostgreSQL.
        self.orchestrators = orchestrators
        self.workers = workers
        self._balancer: Balancer | None = None
        self.orchestrator_ports: dict[str, int] = {}
        self.host = "127.0.0.1"
        self.port = 0
        self.kits_dir = self.work_dir / "kits"
        self.logs_dir = self.work_dir / "logs"
        self._orchestrators: list[ManagedProcess] = []
        self._gateway_processes: dict[str, ManagedProcess] = {}
        self._broker_processes: dict[str, ManagedProcess] = {}
        self._clients: list[Client] = []

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def kit_dir(self, name: str) -> Path:
        path = self.kits_dir / name
        if not path.is_dir():
            raise InvalidInput(f"no kit named {name!r} in {self.kits_dir}")
        return path

    def site_dir(self, gateway: str) -> Path:
        return self.work_dir / "sites" / gateway

    def metrics_path(self, gateway: str) -> Path:
        return self.work_dir / "metrics" / f"{gateway}.prom"

    @property
    def orchestrator_names(self) -> list[str]:
        """ "orchestrator", then "orchestrator-2" and on for the further orchestrator processes."""
        return ["orchestrator", *(f"orchestrator-{i}" for i in range(2, self.orchestrators + 1))]

    def log_path(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def broker_url(self, name: str) -> str:
        return f"https://{self.host}:{self.broker_ports[name]}"

    def logs(self) -> str:
        """The tail of every process's log, for a failing test to print."""
        names = [
            *self.orchestrator_names,
            *(g.name for g in self.gateways),
            *(b.name for b in self.keybrokers),
        ]
        return "\n".join(f"===== {n} =====\n{log_tail(self.log_path(n))}" for n in names)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> Cluster:
        """Provision, write the sites, start every process and wait until the datasets are published."""
        try:
            self.provision()
            for gateway in self.gateways:
                self.write_site(gateway)
            self.start_processes()
        except BaseException:
            self.stop()
            raise
        return self

    def start_processes(self) -> None:
        """Start the orchestrator and every gateway together (a gateway's imports and dataset
        profiling overlap the orchestrator's start; it retries until the orchestrator answers), then
        wait for health and for every dataset to be published."""
        self.start_orchestrator(wait=False)
        for broker in self.keybrokers:
            self.start_keybroker(broker.name)
        for gateway in self.gateways:
            self.start_gateway(gateway.name)
        self.wait_for_health()
        self.wait_for_datasets()

    def resume(self, running: Collection[str] = ()) -> Cluster:
        """Start again a cluster that `start()` provisioned in this `work_dir` before: same port, kits,
        sites and state; nothing is provisioned or written. Processes named in `running` are up already
        (started by an earlier run) and are not started again. Waits until every dataset is published."""
        project_file = self.work_dir / "project.yaml"
        try:
            project = yaml.safe_load(project_file.read_text(encoding="utf-8"))
            self.port = int(project["orchestrator"]["port"])
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"{project_file} is not the project file of a cluster: {exc}") from exc
        try:
            if "orchestrator" in running:
                self.wait_for_health()
            else:
                self.start_orchestrator()
            for gateway in self.gateways:
                if gateway.name not in running:
                    self.start_gateway(gateway.name)
            self.wait_for_datasets()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every process this cluster started, gateways first. Safe to call more than once."""
        for client in self._clients:
            client.close()
        self._clients.clear()
        for process in self._gateway_processes.values():
            process.terminate()
        for process in self._gateway_processes.values():
            process.stop(self.stop_timeout)
        for process in self._broker_processes.values():
            process.stop(self.stop_timeout)
        for process in self._orchestrators:
            process.terminate()
        for process in self._orchestrators:
            process.stop(self.stop_timeout)
        if self._balancer is not None:
            self._balancer.stop()
            self._balancer = None

    def provision(self) -> list[Path]:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port(self.host)
        participants: list[dict[str, Any]] = []
        for g in self.gateways:
            participants.append({"name": g.name, "type": "gateway", "org": g.org})
            if g.authorization is not None:
                participants[-1]["authorization"] = dict(g.authorization)
        participants += [{"name": u.name, "type": "user", "org": u.org, "role": u.role} for u in self.users]
        for b in self.keybrokers:
            self.broker_ports[b.name] = free_port(self.host)
            participants.append({"name": b.name, "type": "keybroker", "org": b.org, "host": self.host,
                                 "port": self.broker_ports[b.name]})  # fmt: skip
        # Every site's org gets an org admin, to sign the site's policies.
        participants += [
            {"name": self.admin_of(org), "type": "user", "org": org, "role": "org_admin"}
            for org in sorted({g.org for g in self.gateways})
            if not any(u.org == org and u.role == "org_admin" for u in self.users)
        ]
        project = {
            "name": self.project,
            "orchestrator": {"host": self.host, "port": self.port},
            "participants": participants,
        }
        project_file = self.work_dir / "project.yaml"
        project_file.write_text(yaml.safe_dump(project, sort_keys=False), encoding="utf-8")
        return provision(load_project(project_file), self.kits_dir)

    def admin_of(self, org: str) -> str:
        """The org admin of `org`: a user of the cluster with that role, or the one provisioning adds."""
        for user in self.users:
            if user.org == org and user.role == "org_admin":
                return user.name
        return f"admin@{org}"

    def sign_policy(
        self,
        gateway: str,
        dataset: str,
        policy: AssetPolicy | Mapping[str, Any] | str,
        *,
        signer: str | None = None,
    ) -> SignedPolicy:
        """`policy` signed for gateway/dataset by `signer`'s kit (default: the admin of the site's org)."""
        org = next(g.org for g in self.gateways if g.name == gateway)
        kit = load_kit(self.kit_dir(signer or self.admin_of(org)))
        return sign_policy(
            policy_yaml(policy),
            f"{gateway}/{dataset}",
            key=kit.private_key,
            certificate=kit.certificate,
            now=utcnow(),
        )

    def write_site(self, gateway: GatewaySetup) -> Path:
        """Write the site's data files, policies and DATASETS.yaml; return the DATASETS.yaml path."""
        site = self.site_dir(gateway.name)
        site.mkdir(parents=True, exist_ok=True)
        entries: list[dict[str, str]] = []
        for dataset in gateway.datasets:
            pq.write_table(dataset.table, site / f"{dataset.name}.parquet")
            entry = {
                "name": dataset.name,
                "path": f"{dataset.name}.parquet",
                "description": dataset.description,
            }
            if dataset.policy is not None:
                signed = self.sign_policy(gateway.name, dataset.name, dataset.policy)
                (site / f"{dataset.name}.policy.json").write_text(signed.model_dump_json(), encoding="utf-8")
                entry["policy"] = f"{dataset.name}.policy.json"
            entries.append(entry)
        if gateway.config is not None:
            (site / "gateway.yaml").write_text(yaml.safe_dump(dict(gateway.config)), encoding="utf-8")
        catalog = site / "DATASETS.yaml"
        catalog.write_text(yaml.safe_dump({"datasets": entries}, sort_keys=False), encoding="utf-8")
        return catalog

    def _child_env(self, extra: Mapping[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _PRIVATE_ENV}
        env["PYTHONUNBUFFERED"] = "1"
        env.update(extra)
        return env

    def _log_flags(self) -> dict[str, str]:
        """Only what differs from the processes' defaults (so an older `custos` also takes them)."""
        flags = {"log_format": self.log_format} if self.log_format != "text" else {}
        return flags | ({"log_level": self.log_level} if self.log_level else {})

    def _cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "custos.cli", *args]

    def start_orchestrator(self, *, wait: bool = True) -> None:
        """Start the orchestrator processes (again, after stop_orchestrator) and, with several, their
        balancer on the cluster's port; wait for health unless `wait` is False."""
        if not self._orchestrators:
            extra = {"CUSTOS_DATABASE_URL": self.database_url} if self.database_url else {}
            for name in self.orchestrator_names:
                flags: dict[str, object] = {}
                if self.metrics and name == "orchestrator":
                    self.metrics_port = free_port(self.host)
                    flags["metrics_port"] = self.metrics_port
                if self.workers > 1:
                    flags["workers"] = self.workers
                port = self.port if self.orchestrators == 1 else free_port(self.host)
                self._orchestrators.append(
                    ManagedProcess(
                        name=name,
                        argv=self._cli(
                            "orchestrator",
                            "start",
                            *_flags(
                                kit=self.kit_dir("orchestrator"),
                                state=self.work_dir / "state" / name,
                                host=self.host,
                                port=port,
                                **self._log_flags(),
                                **flags,
                                **self.orchestrator_options,
                            ),
                        ),
                        env=self._child_env(extra),
                        cwd=self.work_dir,
                        log_path=self.log_path(name),
                    )
                )
                self.orchestrator_ports[name] = port
            if self.orchestrators > 1:
                backends = [(self.host, port) for port in self.orchestrator_ports.values()]
                self._balancer = Balancer(self.host, self.port, backends).start()
        for process in self._orchestrators:
            process.start()
        if wait:
            self.wait_for_health()

    def stop_orchestrator(self, *, kill: bool = False) -> None:
        """Stop the orchestrator processes: SIGTERM, or SIGKILL with `kill`, as a crash would."""
        for process in self._orchestrators:
            if kill:
                process.kill(self.stop_timeout)
            process.stop(self.stop_timeout)

    def add_gateway(self, gateway: GatewaySetup) -> Path:
        """Join a new site to the running project as `custos provision add` does (its kit, and its
        org's admin kit when the org is new); start it and wait for its datasets. Returns its kit."""
        spec: dict[str, Any] = {"name": gateway.name, "type": "gateway", "org": gateway.org}
        if gateway.authorization is not None:
            spec["authorization"] = dict(gateway.authorization)
        kit = add_participant(self.kits_dir, ParticipantSpec.model_validate(spec))
        if not any(g.org == gateway.org for g in self.gateways) and not any(
            u.org == gateway.org and u.role == "org_admin" for u in self.users
        ):
            admin = {
                "name": self.admin_of(gateway.org),
                "type": "user",
                "org": gateway.org,
                "role": "org_admin",
            }
            add_participant(self.kits_dir, ParticipantSpec.model_validate(admin))
        self.gateways.append(gateway)
        self.write_site(gateway)
        self.start_gateway(gateway.name)
        self.wait_for_datasets()
        return kit

    def restart_orchestrator(self, *, kill: bool = False) -> None:
        """Stop the orchestrator (SIGTERM; SIGKILL with `kill`, as a crash would) and start it again on
        the same port and state."""
        self.stop_orchestrator(kill=kill)
        self.start_orchestrator()

    def start_gateway(self, name: str) -> None:
        process = self._gateway_processes.get(name)
        if process is None:
            metrics: dict[str, object] = {}
            if self.metrics:
                self.metrics_path(name).parent.mkdir(parents=True, exist_ok=True)
                metrics["metrics_file"] = self.metrics_path(name)
            process = ManagedProcess(
                name=name,
                argv=self._cli(
                    "gateway",
                    "start",
                    *_flags(
                        kit=self.kit_dir(name),
                        data=self.site_dir(name) / "DATASETS.yaml",
                        state=self.work_dir / "state" / name,
                        **self._log_flags(),
                        **metrics,
                    ),
                ),
                env=self._child_env({}),
                cwd=self.work_dir,
                log_path=self.log_path(name),
            )
            self._gateway_processes[name] = process
        process.start()

    def start_keybroker(self, name: str) -> None:
        """Start a key broker with a fresh vault key file in its state folder; wait until it listens."""
        state = self.work_dir / "state" / name
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        key_file = state / "vault.key"
        if not key_file.exists():
            create_key_file(key_file)
        process = ManagedProcess(
            name=name,
            argv=self._cli(
                "keybroker",
                "start",
                *_flags(kit=self.kit_dir(name), state=state),
                "--key-file",
                str(key_file),
            ),
            env=self._child_env({}),
            cwd=self.work_dir,
            log_path=self.log_path(name),
        )
        self._broker_processes[name] = process
        process.start()
        deadline = time.monotonic() + self.startup_timeout
        while not _listening(self.host, self.broker_ports[name]):
            process.check_running()
            if time.monotonic() > deadline:
                raise CustosError(f"key broker {name} did not listen within {self.startup_timeout:g} s")
            time.sleep(0.1)

    def stop_gateway(self, name: str) -> None:
        process = self._gateway_processes.get(name)
        if process is not None:
            process.stop(self.stop_timeout)

    def process(self, name: str) -> ManagedProcess:
        """The process `name` ("orchestrator" or a gateway) this cluster started."""
        orchestrators = {p.name: p for p in self._orchestrators}
        found = orchestrators.get(name) or self._gateway_processes.get(name)
        if found is None:
            raise InvalidInput(f"this cluster started no process named {name!r}")
        return found

    def pids(self) -> dict[str, int]:
        """The PID of every process of the cluster that is running."""
        processes = [*self._orchestrators, *self._gateway_processes.values()]
        return {p.name: p.popen.pid for p in processes if p.popen is not None and p.running}

    def client(self, user: str, *, timeout: float = 30) -> Client:
        """An SDK client signed in as `user`; closed by stop() if the caller has not closed it."""
        client = Client.from_kit(self.kit_dir(user), timeout=timeout)
        self._clients.append(client)
        return client

    def _check_alive(self) -> None:
        for process in [*self._orchestrators, *self._gateway_processes.values()]:
            process.check_running()

    def wait_for_health(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        with Client.from_kit(self.kit_dir(self.users[0].name), timeout=5) as probe:
            while True:
                self._check_alive()
                try:
                    if probe.health():
                        return
                except CustosError:
                    pass  # not listening yet
                if time.monotonic() > deadline:
                    raise CustosError(
                        f"the orchestrator did not answer {self.url}/healthz "
                        f"within {self.startup_timeout:g} s (logs: {self.logs_dir})"
                    )
                time.sleep(0.1)

    def wait_for_datasets(self) -> None:
        """Wait until every dataset of every gateway is listed by the orchestrator."""
        expected = {f"{g.name}/{d.name}" for g in self.gateways for d in g.datasets}
        deadline = time.monotonic() + self.startup_timeout
        published: set[str] = set()
        # Many gateways signing in at once keep a small machine busy: a list that does not come back in
        # time is asked again, until the deadline. Fewer asks when there are many sites to wait for.
        interval = min(1.0, 0.1 + len(expected) / 200)
        late = ""
        with Client.from_kit(self.kit_dir(self.users[0].name), timeout=10) as probe:
            while True:
                self._check_alive()
                try:
                    published = {f"{d.gateway}/{d.name}" for d in probe.datasets()}
                    late = ""
                except CustosError as exc:
                    late = f"; the last list asked for failed: {exc}"
                if expected <= published:
                    return
                if time.monotonic() > deadline:
                    missing = ", ".join(sorted(expected - published))
                    raise CustosError(
                        f"datasets {missing} were not published "
                        f"within {self.startup_timeout:g} s (logs: {self.logs_dir}){late}"
                    )
                time.sleep(interval)


def _listening(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def _flags(**values: object) -> list[str]:
    """`_flags(kit=path, log_format="json")` -> ["--kit", "path", "--log-format", "json"]."""
    return [part for name, value in values.items() for part in (f"--{name.replace('_', '-')}", str(value))]


def policy_yaml(policy: AssetPolicy | Mapping[str, Any] | str) -> str:
    if isinstance(policy, str):
        return policy
    # Only what the policy states: defaults written out would read back as choices (`round_to: 5`
    # without rounding is refused, for one).
    data = (
        policy.model_dump(mode="json", exclude_unset=True)
        if isinstance(policy, AssetPolicy)
        else dict(policy)
    )
    return yaml.safe_dump(data, sort_keys=False)
