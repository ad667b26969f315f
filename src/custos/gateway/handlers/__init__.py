"""The gateway's handling of one task: one dispatch (`dispatch`) on the task's kind, the checks of
each kind (`builtin`, `custom`, `package`), and the steps every compute task shares (`compute`)."""

from __future__ import annotations

from custos.gateway.handlers.builtin import check_builtin
from custos.gateway.handlers.compute import Compute
from custos.gateway.handlers.custom import check_code_package, check_custom, check_custom_task
from custos.gateway.handlers.dispatch import TaskHandler
from custos.gateway.handlers.package import check_package
from custos.gateway.handlers.task import (
    TASK_RIGHTS,
    CheckedTask,
    ModelSource,
    Outcome,
    SiteRules,
    audit_step,
    check_task,
    model_source,
)

__all__ = [
    "TASK_RIGHTS",
    "CheckedTask",
    "Compute",
    "ModelSource",
    "Outcome",
    "SiteRules",
    "TaskHandler",
    "audit_step",
    "check_builtin",
    "check_code_package",
    "check_custom",
    "check_custom_task",
    "check_package",
    "check_task",
    "model_source",
]
