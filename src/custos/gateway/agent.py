"""The gateway agent: sign in, publish datasets and policies, then long-poll for tasks, tick by tick.

It connects out only and listens on no port. It reconnects with backoff when the orchestrator is
away, and one failing task never stops the loop.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import time
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from types import FrameType

from custos.audit import AuditTrail, HeadReader
from custos.computations.base import policy_privacy
from custos.core.blobs import externalize
from custos.core.clock import utcnow
from custos.core.errors import CustosError, KitError
from custos.core.identity import Role
from custos.core.operator_log import LogFormat, configure_logging
from custos.core.wire import Heartbeat, TaskResultUpload, result_digest
from custos.gateway.budget import BUDGET_FILE, GatewayBudget
from custos.gateway.client import OrchestratorClient, OrchestratorUnreachable
from custos.gateway.config import load_gateway_config
from custos.gateway.crash import CrashPoint, crash_hook_from_env, reached
from custos.gateway.handlers import Outcome, TaskHandler
from custos.gateway.heartbeat import audit_head, beating, heartbeat
from custos.gateway.journal import Journal, Pending
from custos.gateway.key_release import KeyRequester
from custos.gateway.metrics import GatewayMetrics
from custos.gateway.model_cache import ModelCache
from custos.gateway.policies import PolicyKeeper
from custos.gateway.settings import GatewaySettings
from custos.gateway.site import SiteDataset, publication
from custos.gateway.task_watch import TaskWatch
from custos.gateway.trust import GatewayTrust
from custos.pki.kit import Kit
from custos.pki.manifest import MANIFEST_FILE, read_kit_file
from custos.policy import SiteAuthorization, load_site_authorization
from custos.policy.authorization import AUTHORIZATION_FILE
from custos.privacy.filters import PRIVACY_FILE, SitePrivacy, load_site_privacy
from custos.privacy.secure_sum import MaskKeys
from custos.sandbox.runner import Runner

log = logging.getLogger("custos.gateway")


def to_upload(attempt: int, outcome: Outcome) -> Pending:
    """The outcome as an upload: JSON, with its bytes (weights) as blobs beside it."""
    result, blobs = externalize(outcome.result)
    upload = TaskResultUpload(
        attempt=attempt,
        status=outcome.status,
        result=result,
        error=outcome.error,
        digest=result_digest(outcome.status, result, outcome.error),
    )
    return Pending(upload, blobs, outcome.reservation)


class Agent:
    def __init__(
        self,
        name: str,
        client: OrchestratorClient,
        site: dict[str, SiteDataset],
        runner: Runner,
        settings: GatewaySettings,
        *,
        org: str,
        authorization: SiteAuthorization,
        trust: GatewayTrust,
        policies: PolicyKeeper,
        site_privacy: SitePrivacy | None = None,
        mask_keys: MaskKeys | None = None,
        metrics: GatewayMetrics | None = None,
        kit: Kit | None = None,
    ) -> None:
        self.client = client
        self.metrics = metrics or GatewayMetrics(name, None, settings.state_dir)
        self.site = site
        self.settings = settings
        self.trust = trust
        self.policies = policies
        audit = AuditTrail(settings.state_dir / "audit.log")
        # Its head goes with every heartbeat and result, for the orchestrator to anchor.
        self.trail = HeadReader(audit.path)
        # Its totals go with every heartbeat and result, for the orchestrator to reconcile its mirror.
        self.budget = GatewayBudget(settings.state_dir / BUDGET_FILE)
        self.handler = TaskHandler(
            name,
            site,
            runner,
            settings,
            audit,
            org=org,
            authorization=authorization,
            policies=policies,
            budget=self.budget,
            site_privacy=site_privacy,
            models=ModelCache(settings.state_dir, trust.check_certificate),
            archives=client,
            mask_keys=mask_keys,
            keys=None if kit is None else KeyRequester(kit, trust, policies, audit),
        )
        self._crl_checked = float("-inf")
        self.journal = Journal(settings.state_dir / "journal.jsonl")
        self.connected = False
        self._ever_connected = False
        self._backoff = settings.backoff_initial_s
        # Results computed but not yet acknowledged (the orchestrator was away): sent first next tick.
        self._unsent: dict[str, Pending] = {}
        hook = settings.test_crash_at
        # Only a crash test's hook splits an upload's body, to end the gateway between its halves.
        self._upload_midway = (
            partial(hook.reached, CrashPoint.DURING_UPLOAD)
            if hook is not None and hook.point is CrashPoint.DURING_UPLOAD
            else None
        )

    def tick(self) -> None:
        """One step: (re)connect and publish if needed, send what is owed, then wait for one task
        and finish it."""
        if not self.connected:
            self.client.publish(publication(self.site, self.policies))
            self.connected = self._ever_connected = True
            self.metrics.connected(True)
            self._backoff = self.settings.backoff_initial_s
            log.info("connected; published %d dataset(s)", len(self.site))
        # After connecting: the spare's boot never delays the gateway's start.
        self.handler.reap()
        if time.monotonic() - self._crl_checked > self.settings.crl_refresh_s:
            self._refresh_revocations()
        for task_id, unsent in list(self._unsent.items()):
            self._send(task_id, unsent)
        self.metrics.polled()
        polled = self.client.poll(
            held=self._unsent,
            running=self.handler.live_jobs(),
            heartbeat=self._heartbeat(len(self._unsent)),
        )
        for job_id in polled.ended_jobs:
            log.info("job %s has ended; closing its runtimes", job_id)
            self.handler.end_job(job_id)
        task = polled.task
        if task is None:
            return
        pending = self.journal.get(task.task_id, task.attempt)
        if pending is None:
            pending = self.journal.earlier(task.task_id, task.attempt)
            if pending is not None:
                # Computed and journaled at an earlier attempt, not acknowledged: the same result again.
                log.info("task %s attempt %d: re-sending its journaled result", task.task_id, task.attempt)
                self.journal.record(task.task_id, pending)
        if pending is None:
            log.info("task %s (%s, round %d) for %s", task.task_id, task.kind, task.round, task.dataset)
            self.client.start(task)
            started = time.monotonic()
            # Not polling while it works: the heartbeat goes on its own, once per poll wait.
            busy = len(self._unsent) + 1
            with (
                beating(lambda: self.client.heartbeat(self._heartbeat(busy)), self.settings.poll_wait_s),
                TaskWatch(task, self.client.standing, self.handler.stop_job, self.settings.task_check_s),
            ):
                outcome = self.handler.handle_task(task)
            self.metrics.task_done(task.kind.value, outcome.status, time.monotonic() - started)
            pending = to_upload(task.attempt, outcome)
            self.journal.record(task.task_id, pending)
            reached(self.settings.test_crash_at, CrashPoint.AFTER_JOURNAL)
        if pending.reservation is not None:
            # Only now that its result is journaled; again after a crash (committing is idempotent).
            self.budget.settle(pending.reservation)
            reached(self.settings.test_crash_at, CrashPoint.AFTER_COMMIT)
        self._unsent[task.task_id] = pending
        self._send(task.task_id, pending)

    def _heartbeat(self, tasks_in_flight: int) -> Heartbeat:
        return heartbeat(tasks_in_flight, self.trail, self.budget.report(self.site))

    def _refresh_revocations(self) -> None:
        pem = self.client.revocation_list()
        self._crl_checked = time.monotonic()
        if pem is None:
            return
        try:
            self.trust.update(pem)
        except CustosError as exc:
            log.warning("the orchestrator relayed a revocation list this gateway refuses: %s", exc)

    def _send(self, task_id: str, pending: Pending) -> None:
        try:
            upload = pending.upload.model_copy(
                update={"audit_head": audit_head(self.trail), "ledger": self.budget.report(self.site)}
            )
            self.client.upload(task_id, upload, pending.blobs, midway=self._upload_midway)
        except OrchestratorUnreachable:
            raise
        except CustosError as exc:
            # Refused (the task was cancelled, re-leased or is unknown): not sent again now. Its blobs
            # stay with the journal, for a later attempt of the task to re-send.
            log.warning("result of task %s refused: %s", task_id, exc)
            self._unsent.pop(task_id, None)
            return
        self._unsent.pop(task_id, None)
        self.journal.acknowledged(pending)

    def run(self, should_stop: StopFlag) -> None:
        while not should_stop.stopped:
            try:
                self.tick()
            except OrchestratorUnreachable as exc:
                self._sleep_backoff(should_stop, str(exc))
            except CustosError as exc:
                log.warning("orchestrator refused a request: %s", exc)
                self._sleep_backoff(should_stop, str(exc))
            except Exception:
                log.exception("unexpected error in the agent loop; continuing")
                self._sleep_backoff(should_stop, "unexpected error")
            self.metrics.write(self.site)

    def _sleep_backoff(self, should_stop: StopFlag, why: str) -> None:
        self.connected = False
        self.metrics.retried()
        delay = self._backoff * (0.5 + random.random())
        log.info("retrying in %.1f s (%s)", delay, why)
        should_stop.wait(delay)
        ceiling = self.settings.backoff_max_s if self._ever_connected else self.settings.backoff_start_max_s
        self._backoff = min(self._backoff * 2, ceiling)


class StopFlag:
    def __init__(self) -> None:
        self.stopped = False

    def set(self, *_: object) -> None:
        self.stopped = True

    def wait(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.stopped and time.monotonic() < end:
            time.sleep(min(0.1, max(0.0, end - time.monotonic())))


def uses_dp(policies: PolicyKeeper, site: Mapping[str, SiteDataset]) -> bool:
    """Whether a policy in force here releases anything with differential privacy (its spares then
    import OpenDP ahead of need)."""
    for name in site:
        policy = policies.current(name)
        if policy is not None:
            controls = policy_privacy(policy)
            if controls.dp is not None or controls.training is not None:
                return True
    return False


def load_kit_authorization(kit_dir: Path) -> tuple[SiteAuthorization, str]:
    """The site authorization of a kit that `load_kit` has verified, and where it came from. A file the
    CA-signed manifest does not cover (added after provisioning) is refused, not silently obeyed."""
    if (kit_dir / AUTHORIZATION_FILE).exists():
        signed = json.loads(read_kit_file(kit_dir, MANIFEST_FILE)).get("files", {})
        if AUTHORIZATION_FILE not in signed:
            raise KitError(
                f"kit at {kit_dir} has an {AUTHORIZATION_FILE} that its manifest does not cover; "
                "the site's rules must come with the kit from provisioning, so provision the kit again"
            )
    return load_site_authorization(kit_dir)


def run(
    kit_dir: Path,
    data: Path,
    *,
    state_dir: Path | None = None,
    overrides: Mapping[str, object] | None = None,
    log_level: str | None = None,
    log_format: LogFormat = "text",
) -> None:
    """`custos gateway start`: run until SIGTERM or SIGINT. The site's gateway.yaml (beside `data`)
    says how, with `overrides` from the command's flags over it."""
    from custos.gateway.profile_cache import ProfileCache
    from custos.gateway.runtimes import JOB_RUNTIME_MODULES
    from custos.gateway.site import load_site
    from custos.pki.kit import load_kit
    from custos.sandbox.zygote import job_runner

    stop = StopFlag()

    def _terminate(signum: int, frame: FrameType | None) -> None:
        if stop.stopped:
            return  # already shutting down: let the clean-up finish
        stop.set()
        raise SystemExit(0)

    # SIGTERM and Ctrl-C end the run the same way: the loop stops, the runtimes close, exit code 0.
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    config = load_gateway_config(data.parent, overrides)
    kit = load_kit(kit_dir)
    if kit.identity.role is not Role.GATEWAY:
        raise KitError(
            f"kit at {kit_dir} belongs to {kit.identity.name} ({kit.identity.role}), not a gateway"
        )
    authorization, origin = load_kit_authorization(kit_dir)
    state = state_dir or kit_dir / "state"
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    identity = kit.identity
    trust = GatewayTrust(kit.root_certificate, state, utcnow)
    policies = PolicyKeeper(identity.name, identity.org, state, trust.check_certificate)
    # The policies in force are loaded first: each one's minimum cell count sets what is published.
    site = load_site(data, policies, cache=ProfileCache(state))
    site_privacy = load_site_privacy(data.parent / PRIVACY_FILE)
    # CUSTOS_TEST_CRASH_AT is a test hook only: the crash tests kill the gateway at that step.
    settings = GatewaySettings(
        state_dir=state,
        sandbox_caps=config.caps,
        templates=config.templates,
        warm_spares=config.warm_spares,
        poll_wait_s=config.poll_wait_s,
        crl_refresh_s=config.crl_refresh_s,
        warm_dp=uses_dp(policies, site),
        tasks_in_flight=config.tasks_in_flight,
        test_crash_at=crash_hook_from_env(os.environ),
    )
    # Job runtimes fork from a zygote that has imported the runtime (root), else start bubblewrap each.
    runner = job_runner(preload=JOB_RUNTIME_MODULES, warm=settings.warm_dp)
    # Logging starts once everything loaded: a refused start prints only its one-line error.
    configure_logging(identity.name, level=log_level or config.log_level, log_format=log_format)
    log.info("site authorization: %s", origin)
    log.info(
        "configuration: %s; %d task(s) in flight, %d warm spare(s)",
        config.origin, config.tasks_in_flight, config.warm_spares,
    )  # fmt: skip
    log.info("sandbox caps per task: %s", settings.sandbox_caps.to_json())
    for name in site:
        signed = policies.signed(name)
        log.info(
            "dataset %s: %s",
            name,
            f"policy issued {signed.issued_at.isoformat()}" if signed else "no policy yet: no access",
        )
    client = OrchestratorClient(kit, poll_wait_s=settings.poll_wait_s)
    agent = Agent(
        identity.name,
        client,
        site,
        runner,
        settings,
        org=identity.org,
        authorization=authorization,
        trust=trust,
        policies=policies,
        site_privacy=site_privacy,
        mask_keys=MaskKeys(kit.certificate, kit.private_key, trust.check_certificate),
        metrics=GatewayMetrics(identity.name, config.metrics_file, state),
        kit=kit,
    )
    agent.metrics.write(site, force=True)
    try:
        agent.run(stop)
    except KeyboardInterrupt:
        pass
    finally:
        agent.handler.close()
        close_runner = getattr(runner, "close", None)
        if close_runner is not None:
            close_runner()
        client.close()
        agent.metrics.connected(False)
        agent.metrics.write(site, force=True)
