"""Every `custos` command is a thin layer over the SDK, so the CLI and the SDK never disagree.

`COMMANDS` maps each command of the real Typer app to what it calls: a `custos.sdk.Client` method
("sdk"), or, for the commands that work on local files and processes and never talk to an orchestrator,
the library function ("library", module:function). The tests below fail when a command is added
without a mapping, when a mapping names a method or function that does not exist or that the command's
module does not call, when a CLI module reaches the network other than through the SDK, and when a
mapped SDK method is exercised by no test.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
import typer

from custos.cli.main import app
from custos.sdk import Client

Via = Literal["sdk", "library"]

COMMANDS: dict[str, tuple[Via, str]] = {
    "whoami": ("sdk", "me"),
    "demo": ("library", "custos.demo:run_demo"),
    "dev": ("library", "custos.local.launch:launch"),
    # A project admin's CA and kits are local files; only push-crl (and revoke --push) reach the
    # orchestrator, through the SDK.
    "provision create": ("library", "custos.pki.provision:provision"),
    "provision add": ("library", "custos.pki.enrolment:add_participant"),
    "provision revoke": ("library", "custos.pki.revocation:revoke_participant"),
    "provision push-crl": ("sdk", "publish_revocations"),
    "provision unpack": ("library", "custos.pki.archive:unpack_kit_archive"),
    # Servers run in this process; they are what the SDK talks to.
    "orchestrator start": ("library", "custos.orchestrator.server:serve"),
    "gateway start": ("library", "custos.gateway.agent:run"),
    "gateway authz-preview": ("library", "custos.policy:decide"),
    # A failed custom code task's full log is a file in the gateway's state; releasing it is the SDK's.
    "gateway log show": ("library", "custos.gateway.code_logs:read_code_logs"),
    "gateway log release": ("sdk", "release_log"),
    "dataset list": ("sdk", "datasets"),
    "site list": ("sdk", "sites"),
    "dataset search": ("sdk", "search_datasets"),
    "dataset show": ("sdk", "dataset"),
    "dataset mock": ("sdk", "mock"),
    # Signing uses the custodian's own key, offline; pushing goes through the SDK.
    "policy sign": ("library", "custos.policy.signing:sign_policy"),
    "policy push": ("sdk", "push_policy"),
    "spec create": ("sdk", "create_spec"),
    "spec activate": ("sdk", "activate_spec"),
    "spec status": ("sdk", "spec"),
    "spec deactivate": ("sdk", "deactivate_spec"),
    "spec list": ("sdk", "specs"),
    "job submit": ("sdk", "submit_job"),
    "job status": ("sdk", "job"),
    "job list": ("sdk", "jobs"),
    "job cancel": ("sdk", "cancel_job"),
    "job result": ("sdk", "job_result"),
    "job log": ("sdk", "job_logs"),
    # A site's audit trail is a local file (the gateway's or the orchestrator's).
    "audit show": ("library", "custos.audit:read_events"),
    "audit verify": ("library", "custos.audit:verify_trail"),
    "password set": ("sdk", "set_password"),
    "token create": ("sdk", "create_token"),
    "token list": ("sdk", "tokens"),
    "token revoke": ("sdk", "revoke_token"),
    "release list": ("sdk", "releases"),
    "release show": ("sdk", "release"),
    "release fetch": ("sdk", "fetch_release_output"),
    "release approve": ("sdk", "approve_release"),
    "release return": ("sdk", "return_release"),
    "release reject": ("sdk", "reject_release"),
    "model publish": ("sdk", "publish_model"),
    "model list": ("sdk", "models"),
    "model show": ("sdk", "model"),
    "budget show": ("sdk", "budget"),
    # A model owner's key broker: a server, and its vault, local files on the broker's host.
    "keybroker start": ("library", "custos.keybroker.server:serve"),
    "keybroker init-key": ("library", "custos.keybroker.vault:create_key_file"),
    "keybroker policy show": ("library", "custos.keybroker.vault:KeyVault"),
    "keybroker policy set": ("library", "custos.keybroker.vault:KeyVault"),
    "keybroker revoke": ("library", "custos.keybroker.vault:KeyVault"),
    "keybroker rotate": ("library", "custos.keybroker.vault:load_key_file"),
    "keybroker measure": ("library", "custos.attestation.software:measure_runtime"),
    "code submit": ("sdk", "submit"),
    "code list": ("sdk", "code_requests"),
    "code show": ("sdk", "code_request"),
    "code approve": ("sdk", "approve_code"),
    "code deny": ("sdk", "deny_code"),
    "code run": ("sdk", "run_code"),
}

# The one CLI module that may name httpx: it turns httpx's errors into one-line messages.
NETWORK_IMPORTS = {"httpx", "requests", "urllib.request", "http.client"}
MAY_NAME_HTTPX = {"custos.cli.failures"}
TESTS = Path(__file__).resolve().parents[2]


def walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    # Typer vendors its own copy of Click, so groups are told apart by their `commands`.
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from walk(sub, (*path, name))
    else:
        yield " ".join(path), command.callback


CLI = dict(walk(typer.main.get_command(app)))


def test_every_command_is_mapped_and_every_mapping_is_a_command() -> None:
    assert sorted(set(CLI) - set(COMMANDS)) == [], "commands without a mapping: add them to COMMANDS"
    assert sorted(set(COMMANDS) - set(CLI)) == [], "mappings of commands that no longer exist"


def _library(target: str) -> Any:
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_the_mapped_method_or_function_exists_and_the_command_calls_it(command: str) -> None:
    via, target = COMMANDS[command]
    callback = CLI[command]
    source = inspect.getsource(inspect.getmodule(callback))  # type: ignore[arg-type]
    if via == "sdk":
        method = getattr(Client, target, None)
        assert callable(method) and not target.startswith("_"), f"Client.{target} is not a public method"
        assert f"client.{target}(" in source, f"`custos {command}` does not call Client.{target}"
        # The command, or a helper of its module, opens the SDK's Client.
        assert "open_client(" in source or "Client.from_kit(" in source, f"`custos {command}` opens no Client"
    else:
        assert callable(_library(target)), target
        assert f"{target.split(':')[1]}(" in source, f"`custos {command}` does not call {target}"


def _imports(module: Any) -> set[str]:
    tree = ast.parse(inspect.getsource(module))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_command_module_reaches_the_orchestrator_but_through_the_sdk() -> None:
    modules = {inspect.getmodule(callback) for callback in CLI.values()}
    assert len(modules) > 10
    for module in modules:
        assert module is not None
        imported = _imports(module)
        assert not imported & NETWORK_IMPORTS, f"{module.__name__} imports {imported & NETWORK_IMPORTS}"
        assert not any(name.startswith("custos.gateway.client") for name in imported), module.__name__
        assert "_send(" not in inspect.getsource(module), f"{module.__name__} uses the SDK's private _send"
    for name in MAY_NAME_HTTPX:
        assert "httpx" in _imports(importlib.import_module(name))


def test_every_mapped_sdk_method_is_exercised_by_a_test() -> None:
    sources = [
        path.read_text(encoding="utf-8")
        for path in TESTS.rglob("test_*.py")
        if path.resolve() != Path(__file__).resolve()
    ]
    untested = sorted(
        target
        for via, target in COMMANDS.values()
        if via == "sdk" and not any(f".{target}(" in text for text in sources)
    )
    assert untested == [], f"SDK methods behind CLI commands that no test calls: {untested}"
