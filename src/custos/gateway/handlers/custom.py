"""Tasks that run reviewed custom code (model `custom`), checked further than a built-in model's.

The site must give the submitter the `custom_code` right, the dataset's policy must say
`custom_code: review`, and the task must carry an approval, signed by a custodian of this site's org,
of exactly the code it carries (the gateway computes the digest itself). A package's archive is then
checked in memory, as the registry checks a model's, and is never unpacked: the sandbox imports it
from memory. The code's output must be of its declared type and within its caps (a table is then
checked under the disclosure rules: see `outputs`), and a failure leaves as its category, class and
line of the submitted code (`custos.computations.failures`); its message stays in `code-logs/`.
"""

from __future__ import annotations

from custos.computations.custom.code_package import CodePackage, verify_code_package
from custos.computations.custom.disclosure import DEFAULT_CAPS
from custos.computations.custom.model import CODE_KEY, CustomModel
from custos.computations.failures import submitted_sources
from custos.core.errors import PolicyDenied
from custos.core.wire import CustomCodeTask, TaskAssignment, TaskKind
from custos.gateway.handlers.task import TASK_RIGHTS, CheckedTask, SiteRules
from custos.gateway.site import SiteDataset
from custos.policy import AssetPolicy, Right, SiteAuthorization, check_access, check_authorization
from custos.policy.checks import granted_columns
from custos.policy.code_approval import check_code_approved
from custos.policy.signing import CertificateCheck


def check_custom(
    task: TaskAssignment, dataset: SiteDataset, policy: AssetPolicy | None, rules: SiteRules
) -> CheckedTask:
    """Raise unless this site runs the task's custom code (see `check_custom_task`), and a package's
    manifest reads only columns of the dataset. Its output is checked against the declared type and
    caps: the defaults, or those of the package's manifest."""
    code, columns, package = check_custom_task(
        task, rules.gateway, site_org=rules.org, authorization=rules.authorization, policy=policy,
        check_certificate=rules.check_certificate,
    )  # fmt: skip
    caps = DEFAULT_CAPS
    if package is not None:  # its manifest's columns and caps apply here
        package.check_columns(dataset.schema, f"{rules.gateway}/{task.dataset}")
        caps = package.output_caps(caps)
    checked = f"{task.dataset}: code request {code.request_id}, digest {code.digest}"
    return CheckedTask(
        task, CustomModel(), columns, audit=("code_approved_checked", checked), output=code.output,
        caps=caps, sources=submitted_sources(code, code.function),
    )  # fmt: skip


def check_custom_task(
    task: TaskAssignment,
    gateway: str,
    *,
    site_org: str,
    authorization: SiteAuthorization,
    policy: AssetPolicy | None,
    check_certificate: CertificateCheck,
) -> tuple[CustomCodeTask, list[str], CodePackage | None]:
    """Raise unless this site lets the task's submitter run its custom code here: the `custom_code`
    right, a policy with `custom_code: review` and a grant to model `custom`, and a verified approval
    of exactly this code by a custodian of this site's org. Returns the code, the granted columns and,
    for a package, the verified package."""
    who = task.submitter
    ref = f"{gateway}/{task.dataset}"
    for right in (TASK_RIGHTS[task.kind], Right.CUSTOM_CODE):
        try:
            check_authorization(
                authorization, site_org=site_org, user=who.name, org=who.org, role=who.role, right=right
            )
        except PolicyDenied as exc:
            raise PolicyDenied(f"site {gateway} refuses {who.name} of {who.org}: {exc.message}") from None
    if task.kind is not TaskKind.COMPUTE:
        raise PolicyDenied("custom code runs only in a job's compute task")
    if policy is None:
        raise PolicyDenied(f"no policy for dataset {ref}: access is denied by default")
    if policy.custom_code != "review":
        raise PolicyDenied(
            f"the policy for {ref} does not accept custom code (custom_code: {policy.custom_code})"
        )
    try:
        code = CustomCodeTask.model_validate(task.round_input.get(CODE_KEY))
    except ValueError:
        raise PolicyDenied("the task carries no well-formed custom code and approvals") from None
    check_code_approved(
        code, dataset=ref, site_org=site_org, author=who.name, author_org=who.org, params=task.params,
        check_certificate=check_certificate,
    )  # fmt: skip
    package = check_code_package(code) if code.package_b64 is not None else None
    model = CustomModel()
    check_access(policy, ref, who.name, who.org, model.name, model.version, [])
    columns = sorted(granted_columns(policy, who.name, who.org, model.name, model.version))
    return code, columns, package


def check_code_package(code: CustomCodeTask) -> CodePackage:
    """Raise unless the approved archive passes the registry's checks in memory (no `..`, absolute
    path, link or zip bomb; a manifest), and its manifest names the task's entrypoint and output."""
    package = verify_code_package(code.archive(), code.digest)
    if package.entrypoint != code.function or package.output != code.output:
        raise PolicyDenied(
            f"code request {code.request_id} runs {code.function} ({code.output}), but its package's "
            f"manifest names {package.entrypoint} ({package.output})"
        )
    return package
