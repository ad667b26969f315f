"""Tasks that run a package published in the orchestrator's registry. The gateway fetches it from the
orchestrator, verifies its digest, signature and structure and caches it by digest (at the spec's
prepare task, and again before every run), then runs it in the sandbox through `package@1.0.0`; its
output is checked against the manifest's, and its failures leave as custom code's do (its category,
class and line of the package; `custos.computations.failures`). A confidential package stays
ciphertext here: the gateway hands it to the sandbox with the data key its owner's broker wrapped for
the runtime (`custos.gateway.key_release`), and its failures leave as category and class only."""

from __future__ import annotations

from custos.computations.custom.code_package import manifest_caps
from custos.computations.custom.disclosure import DEFAULT_CAPS
from custos.computations.failures import package_sources
from custos.computations.package.model import PACKAGE_KEY, PackageModel, PackageRunner
from custos.core.errors import PolicyDenied
from custos.core.wire import TaskAssignment, TaskKind
from custos.gateway.handlers.task import CheckedTask, ConfidentialRun, SiteRules, check_task
from custos.gateway.model_cache import ArchiveSource, ModelCache
from custos.gateway.site import SiteDataset
from custos.policy import AssetPolicy


def check_package(
    task: TaskAssignment,
    dataset: SiteDataset,
    policy: AssetPolicy | None,
    rules: SiteRules,
    models: ModelCache | None,
    archives: ArchiveSource | None,
) -> CheckedTask:
    """Raise unless this site runs published packages, the package verifies (and is the one the
    orchestrator names by digest), and the site's authorization and `policy` allow it. A compute
    task runs as `package@1.0.0`, handed the verified archive and the parameters with their defaults."""
    if models is None or archives is None:
        raise PolicyDenied(f"site {rules.gateway} runs no published packages")
    cached = models.fetch(archives, task.model)
    named = task.round_input.get(PACKAGE_KEY, {}).get("digest")
    if named is not None and named != cached.digest:
        raise PolicyDenied(
            f"the orchestrator runs {task.model} as sha256:{named}; this site verified sha256:{cached.digest}"
        )
    model = PackageModel(cached.manifest, cached.digest)
    _, columns = check_task(
        task, dataset, rules.gateway, site_org=rules.org, authorization=rules.authorization,
        policy=policy, model=model,
    )  # fmt: skip
    verified = ("package_verified", f"{task.model} sha256:{cached.digest}, signed by {cached.signer.name}")
    if task.kind is TaskKind.PREPARE:
        return CheckedTask(task, model, columns, audit=verified)
    params = model.manifest.check_params(dict(task.params))  # with the defaults
    if cached.terms is not None:
        # Ciphertext only: the sandboxed runtime opens it with the key the owner's broker wraps for it.
        sealed = {
            "sealed": models.archive(cached.digest), "terms": cached.terms.model_dump(mode="json"),
            "name": model.name, "version": model.version, "entrypoint": model.manifest.entrypoint,
            "output": model.output,
        }  # fmt: skip
        run = task.model_copy(
            update={
                "model": f"{PackageRunner.name}@{PackageRunner.version}",
                "params": params,
                "round_input": {PACKAGE_KEY: sealed},
            }
        )
        return CheckedTask(
            run, model, columns, audit=verified, output=model.output,
            caps=manifest_caps(model.manifest, DEFAULT_CAPS), sources={},
            confidential=ConfidentialRun(cached.terms, cached.digest, cached.signer.org),
        )  # fmt: skip
    archive = models.archive(cached.digest)
    package = {"archive": archive, "entrypoint": model.manifest.entrypoint}
    run = task.model_copy(
        update={
            "model": f"{PackageRunner.name}@{PackageRunner.version}",
            "params": params,
            "round_input": {PACKAGE_KEY: package | {"output": model.output}},
        }
    )
    return CheckedTask(
        run, model, columns, audit=verified, output=model.output,
        caps=manifest_caps(model.manifest, DEFAULT_CAPS), sources=package_sources(archive),
    )  # fmt: skip
