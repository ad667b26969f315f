"""`custos policy sign|push|show`: asset policies, signed by an org admin of the dataset's org."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from custos.cli.options import KitOption, open_client
from custos.cli.output import echo
from custos.core.clock import utcnow
from custos.core.errors import InvalidInput
from custos.core.refs import parse_dataset_ref
from custos.core.wire import SignedPolicy
from custos.pki.kit import load_kit
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


@app.command("sign")
def sign_command(
    policy: Annotated[Path, typer.Argument(help="The policy YAML.", show_default=False)],
    kit: KitOption,
    dataset: DatasetOption,
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="Where to write the signed policy (JSON).")
    ] = None,
) -> None:
    """Sign a policy with your kit's key (you must be an org admin of the dataset's org)."""
    signed = _sign(kit, _read(policy), dataset)
    target = out or policy.with_suffix(".json")
    target.write_text(signed.model_dump_json(indent=2) + "\n", encoding="utf-8")
    who = load_kit(kit).identity
    echo(
        f"signed the policy for {signed.dataset} as {who.name} ({who.role.value}, {who.org}), "
        f"issued {signed.issued_at:%Y-%m-%d %H:%M:%S} UTC: wrote {target}"
    )


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
