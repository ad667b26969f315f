"""What the gateway does with one task. It re-checks everything against its own policy copy, whatever
the orchestrator decided, then runs the computation in the sandbox with a per-task DAL.

`handle_task` never raises: every failure becomes an outcome with a reason the researcher may see.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from custos.computations.base import FederatedModel
from custos.computations.models import get_model
from custos.core.digest import canonical_json
from custos.core.errors import CustosError, PolicyDenied
from custos.core.refs import parse_model_ref
from custos.core.wire import TaskAssignment, TaskKind
from custos.gateway.dal import DalServer, DatasetGrant
from custos.gateway.settings import GatewaySettings
from custos.gateway.site import SiteDataset, get_dataset
from custos.policy import check_access
from custos.sandbox.limits import SandboxLimits
from custos.sandbox.runner import Bind, Runner, SandboxRequest

log = logging.getLogger("custos.gateway")


@dataclass(frozen=True)
class Outcome:
    status: Literal["done", "failed"]
    result: dict[str, Any] | None = None
    error: str | None = None


def check_task(task: TaskAssignment, dataset: SiteDataset, gateway: str) -> tuple[FederatedModel, list[str]]:
    """Raise unless this site's policy allows the task. Returns the model and the columns it reads."""
    ref = parse_model_ref(task.model)
    model = get_model(ref.name, ref.version)
    columns = list(task.columns)
    if task.kind is TaskKind.COMPUTE:
        model.validate_params(task.params, dataset.schema, task.columns)
        columns = model.columns_used(task.params)
        outside = sorted(set(columns) - set(task.columns))
        if outside:
            raise PolicyDenied(
                f"the job reads column(s) {', '.join(outside)} that its compute spec does not name"
            )
    else:
        for column in columns:
            dataset.schema.column(column)
    who = task.submitter
    check_access(
        dataset.policy, f"{gateway}/{task.dataset}", who.name, who.org, ref.name, ref.version, columns
    )
    return model, columns


class TaskHandler:
    def __init__(
        self, gateway: str, site: dict[str, SiteDataset], runner: Runner, settings: GatewaySettings
    ) -> None:
        self._gateway = gateway
        self._site = site
        self._runner = runner
        self._settings = settings

    def handle_task(self, task: TaskAssignment) -> Outcome:
        try:
            dataset = get_dataset(self._site, task.dataset)
            model, columns = check_task(task, dataset, self._gateway)
            if task.kind is TaskKind.PREPARE:
                return Outcome("done", result={"validated": True})
            return self._compute(task, dataset, model, columns)
        except CustosError as exc:
            log.info("task %s refused or failed: %s", task.task_id, exc)
            return Outcome("failed", error=str(exc))
        except Exception as exc:  # one bad task must never stop the agent
            log.exception("task %s failed unexpectedly", task.task_id)
            return Outcome("failed", error=f"internal error at the gateway ({type(exc).__name__})")

    def _compute(
        self, task: TaskAssignment, dataset: SiteDataset, model: FederatedModel, columns: list[str]
    ) -> Outcome:
        work = self._settings.state_dir / "tasks" / f"{task.task_id}-{task.attempt}"
        shutil.rmtree(work, ignore_errors=True)
        task_dir, out_dir = work / "task", work / "output"
        for d in (task_dir, out_dir):
            d.mkdir(parents=True, mode=0o755)
        # A unix socket path is limited to 107 bytes, so the DAL socket lives in a short folder.
        dal_dir = Path(tempfile.mkdtemp(prefix="custos-dal-"))
        dal_dir.chmod(0o755)
        token = secrets.token_urlsafe(32)
        (task_dir / "input.json").write_bytes(
            canonical_json(
                {
                    "model": task.model,
                    "dataset": task.dataset,
                    "params": task.params,
                    "round_input": task.round_input,
                    "dal_socket": "/dal/dal.sock",
                    "dal_token": token,
                }
            )
        )
        (task_dir / "input.json").chmod(0o644)
        grants = {task.dataset: DatasetGrant(source=dataset.source, columns=frozenset(columns))}
        limits = SandboxLimits.from_resources(task.resources, self._settings.sandbox_caps)
        try:
            with DalServer.start(
                dal_dir / "dal.sock", token, grants, access_log=self._settings.state_dir / "access.log"
            ):
                ran = self._runner.run(
                    SandboxRequest(
                        argv=["-m", "custos.computations.runtime", "/task/input.json", "/output"],
                        output_dir=out_dir,
                        binds=[Bind(task_dir, "/task"), Bind(dal_dir, "/dal")],
                        limits=limits,
                    )
                )
            if not ran.ok:
                return Outcome("failed", error=self._failure(ran.failure, out_dir))
            result = self._read_json(out_dir / "result.json")
            assert dataset.policy is not None  # check_task refused a dataset without a policy
            filtered = model.filter_site_result(task.params, result, dataset.policy.min_count)
            return Outcome("done", result=filtered)
        finally:
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(dal_dir, ignore_errors=True)

    def _read_json(self, path: Path) -> dict[str, Any]:
        if not path.is_file():
            raise CustosError("the computation wrote no result")
        if path.stat().st_size > self._settings.max_result_bytes:
            raise CustosError(f"the result is larger than {self._settings.max_result_bytes} bytes")
        value = json.loads(path.read_bytes())
        if not isinstance(value, dict):
            raise CustosError("the computation's result is not a JSON object")
        return value

    def _failure(self, failure: str | None, out_dir: Path) -> str:
        reason = failure or "the computation failed"
        err = out_dir / "error.json"
        if err.is_file() and err.stat().st_size < 64_000:
            try:
                info = json.loads(err.read_bytes())
                reason = f"{reason}: {info.get('type', 'Error')}: {info.get('message', '')}"
            except ValueError:
                pass
        return reason[:2000]
