"""Tasks that run a model shipped with Custos: the site's authorization and its policy are the checks."""

from __future__ import annotations

from custos.core.wire import TaskAssignment
from custos.gateway.handlers.task import CheckedTask, SiteRules, check_task
from custos.gateway.site import SiteDataset
from custos.policy import AssetPolicy


def check_builtin(
    task: TaskAssignment, dataset: SiteDataset, policy: AssetPolicy | None, rules: SiteRules
) -> CheckedTask:
    """Raise unless the site's authorization and `policy` allow the task; the sandbox runs it as sent."""
    model, columns = check_task(
        task, dataset, rules.gateway, site_org=rules.org, authorization=rules.authorization, policy=policy
    )
    return CheckedTask(task, model, columns)
