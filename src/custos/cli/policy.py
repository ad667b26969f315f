"""`custos policy sign|push|show`: asset policies, signed by an org admin of the dataset's org."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from custos.cli.options import KitOption, open_client
from custos.cli.output import echo
from custos.core.clock import utcnow
from custos.core.errors import CustosError, InvalidInput
from custos.core.identity import Identity
from custos.core.refs import parse_dataset_ref
from custos.core.wire import CUSTOM_MODEL, SignedPolicy
from custos.pki.certs import identity_of, load_certificate_pem
from custos.pki.kit import load_kit
from custos.policy import load_policy
from custos.policy.checks import policy_problems
from custos.policy.signing import sign_policy

app = typer.Typer(help="Sign, push and show asset policies.", no_args_is_help=True)

DatasetOption = Annotated[
    str, typer.Option("--dataset", help="gateway/dataset the policy is for, e.g. site-a/patients.")
]
MAX_POLICY_FILE_BYTES = 512 * 1024


def _read(path: Path) -> str:
    if not path.is_file():
        raise InvalidInput(f"{path} does not exist or is not a file")
    if path.stat().st_size > MAX_POLICY_FILE_BYTES:
        raise InvalidInput(f"{path} is larger than {MAX_POLICY_FILE_BYTES} bytes")
    return path.read_text(encoding="utf-8")


def _sign(kit: Path, text: str, dataset: str) -> SignedPolicy:
    ref = parse_dataset_ref(dataset)
    loaded = load_kit(kit)
    return sign_policy(text, str(ref), key=loaded.private_key, certificate=loaded.certificate, now=utcnow())


def _signed_or_yaml(path: Path, kit: Path, dataset: str | None) -> SignedPolicy:
    """A signed policy file as is, or a YAML policy signed now with the kit."""
    text = _read(path)
    if text.lstrip().startswith("{"):
        try:
            return SignedPolicy.model_validate_json(text)
        except ValidationError as exc:
            raise InvalidInput(f"{path} is JSON but not a signed policy: {exc.errors()[0]['msg']}") from exc
    if dataset is None:
        raise InvalidInput(f"{path} is a policy to sign: give --dataset GATEWAY/DATASET")
    return _sign(kit, text, dataset)


def _check_overwrite(target: Path, who: Identity) -> None:
    """Refuse to replace `target` unless it is a policy signed by `who` (re-signing one's own)."""
    if not target.exists():
        return
    if not target.is_file():
        raise InvalidInput(f"{target} exists and is not a file; choose another --out")
    try:
        signer = identity_of(
            load_certificate_pem(SignedPolicy.model_validate_json(_read(target)).signer_certificate_pem)
        )
    except (ValidationError, CustosError, ValueError):
        raise InvalidInput(
            f"{target} exists and is not a signed policy; add --force to overwrite it"
        ) from None
    if (signer.name.casefold(), signer.org.casefold()) != (who.name.casefold(), who.org.casefold()):
        raise InvalidInput(
            f"{target} holds a policy signed by {signer.name} ({signer.org}); add --force to overwrite "
            "it, or write yours elsewhere with --out"
        )


def _warn_of_grants(kit: Path, signed: SignedPolicy) -> None:
    """Warn (on stderr) of grants naming a column the dataset lacks or a model the registry does not
    hold, as the orchestrator would refuse them at push; say so when it cannot be asked."""
    policy = load_policy(signed.policy_yaml, "the policy")
    try:
        with open_client(kit) as client:
            schema = client.dataset(signed.dataset).schema
            models = {m.name for m in client.models()} | {CUSTOM_MODEL.partition("@")[0]}
    except CustosError as exc:
        echo(f"warning: the grants were not checked against the dataset and the registry: {exc}", err=True)
        return
    for problem in policy_problems(policy, signed.dataset, [c.name for c in schema.columns], models):
        echo(f"warning: {problem}; `custos policy push` will refuse it", err=True)


@app.command("sign")
def sign_command(
    policy: Annotated[Path, typer.Argument(help="The policy YAML.", show_default=False)],
    kit: KitOption,
    dataset: DatasetOption,
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="Where to write the signed policy (JSON).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite --out even if someone else signed what it holds.")
    ] = False,
) -> None:
    """Sign a policy with your kit's key (you must be an org admin of the dataset's org). Warns of
    grants that name a column or model the orchestrator does not know."""
    target = out or policy.with_suffix(".json")
    who = load_kit(kit).identity
    if not force:
        _check_overwrite(target, who)
    signed = _sign(kit, _read(policy), dataset)
    target.write_text(signed.model_dump_json(indent=2) + "\n", encoding="utf-8")
    echo(
        f"signed the policy for {signed.dataset} as {who.name} ({who.role.value}, {who.org}), "
        f"issued {signed.issued_at:%Y-%m-%d %H:%M:%S} UTC: wrote {target}"
    )
    _warn_of_grants(kit, signed)


@app.command("push")
def push_command(
    policy: Annotated[
        Path, typer.Argument(help="A signed policy (JSON), or a policy YAML to sign now.", show_default=False)
    ],
    kit: KitOption,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="gateway/dataset, when POLICY is YAML to sign.")
    ] = None,
) -> None:
    """Put a signed policy in force: the orchestrator and every gateway verify it before using it."""
    signed = _signed_or_yaml(policy, kit, dataset)
    with open_client(kit) as client:
        info = client.push_policy(signed)
    echo(
        f"the policy for {info.id} is in force, signed by {info.policy_signer}; "
        "its gateway verifies it with the next task"
    )
