"""`custos keybroker`: a model owner's key broker. `start` serves it; `init-key` makes a vault key
file; `policy show|set`, `revoke` and `rotate` act on the broker's state folder, on the host where
it runs (the running broker reads its vault on every request, so a change applies at once);
`measure` prints this installation's runtime measurement, for a key's policy."""

from __future__ import annotations

import getpass
import json as jsonlib
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from custos.cli.options import JsonOption, split_values
from custos.cli.output import echo, key_value_table, print_json, stdout
from custos.core.errors import InvalidInput
from custos.core.wire.keybroker import KeyPolicy, KeyPublic

app = typer.Typer(help="Run a model owner's key broker and manage its keys.", no_args_is_help=True)
policy_app = typer.Typer(help="Show or change the policy of one key.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")

StateOption = Annotated[
    Path, typer.Option("--state", help="The broker's state folder (vault, audit trail).", show_default=False)
]
KeyFileOption = Annotated[
    Path | None,
    typer.Option("--key-file", help="The vault key file (32 bytes, mode 600). Without it: a passphrase."),
]
KeyIdArgument = Annotated[str, typer.Argument(help="The key id, as `custos model show` prints it.")]


def _vault_key(state: Path, key_file: Path | None) -> bytes:
    from custos.keybroker.vault import load_key_file, passphrase_key

    if key_file is not None:
        return load_key_file(key_file)
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    return passphrase_key(state, getpass.getpass("vault passphrase: "))


def _vault(state: Path, key_file: Path | None):  # type: ignore[no-untyped-def]
    from custos.keybroker.vault import KeyVault

    return KeyVault(state, _vault_key(state, key_file))


def _show(key: KeyPublic, json: bool) -> None:
    if json:
        print_json(key)
        return
    p = key.policy
    rows = [
        ("key", key.key_id),
        ("package", p.package),
        ("ciphertext", f"sha256:{p.ciphertext_digest}"),
        ("measurements", ", ".join(p.measurements)),
        ("gateways", ", ".join(p.gateways) or "any of the project"),
        ("orgs", ", ".join(p.orgs) or "any"),
        ("expires", p.expires_at.isoformat() if p.expires_at else "never"),
        ("owner", key.owner),
        ("revoked", key.revoked or "no"),
    ]
    stdout().print(key_value_table(f"key {key.key_id}", rows))


@app.command("start")
def start(
    kit: Annotated[Path, typer.Option("--kit", help="The key broker's startup kit.", show_default=False)],
    state: StateOption,
    key_file: KeyFileOption = None,
    host: Annotated[str | None, typer.Option("--host", help="Address (default: from the kit).")] = None,
    port: Annotated[
        int | None, typer.Option("--port", min=1, max=65535, help="Port (default: the kit's).")
    ] = None,
) -> None:
    """Serve the key broker over HTTPS (mutual TLS with the project's certificates)."""
    from custos.keybroker.server import serve

    serve(kit, state, _vault_key(state, key_file), host=host, port=port)


@app.command("init-key")
def init_key(path: Annotated[Path, typer.Argument(help="Where to write the new vault key file.")]) -> None:
    """Write a new random vault key file (mode 600); refuses to overwrite one."""
    from custos.keybroker.vault import create_key_file

    if path.exists():
        raise InvalidInput(f"{path} exists; a vault key file is never overwritten")
    create_key_file(path)
    echo(f"vault key written to {path}")


@policy_app.command("show")
def policy_show(
    key_id: KeyIdArgument, state: StateOption, key_file: KeyFileOption = None, json: JsonOption = False
) -> None:
    """The policy of one key."""
    _show(_vault(state, key_file).get(key_id).public(), json)


@policy_app.command("set")
def policy_set(
    key_id: KeyIdArgument,
    state: StateOption,
    key_file: KeyFileOption = None,
    measurement: Annotated[
        list[str] | None, typer.Option("--measurement", help="Allowed runtime; repeatable.")
    ] = None,
    gateway: Annotated[
        list[str] | None, typer.Option("--gateway", help="Allowed gateway; repeatable.")
    ] = None,
    org: Annotated[list[str] | None, typer.Option("--org", help="Allowed gateway org; repeatable.")] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="ISO time, e.g. 2027-06-30T00:00:00+00:00.")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Replace the allowed measurements, gateways, orgs or expiry of one key (others are kept)."""
    vault = _vault(state, key_file)
    current = vault.get(key_id).policy
    changes: dict[str, object] = {}
    if measurement:
        changes["measurements"] = split_values(measurement)
    if gateway is not None:
        changes["gateways"] = split_values(gateway)
    if org is not None:
        changes["orgs"] = split_values(org)
    if expires is not None:
        try:
            changes["expires_at"] = datetime.fromisoformat(expires)
        except ValueError:
            raise InvalidInput(
                f"--expires {expires!r} is not an ISO time, e.g. 2027-06-30T00:00:00+00:00"
            ) from None
    policy = KeyPolicy.model_validate(current.model_dump() | changes)
    _show(vault.set_policy(key_id, policy).public(), json)


@app.command("revoke")
def revoke(
    key_id: KeyIdArgument,
    state: StateOption,
    key_file: KeyFileOption = None,
    reason: Annotated[str, typer.Option("--reason", help="Said to every later request.")] = "",
) -> None:
    """Release the key to no one from now on; later runs fail naming the reason."""
    _vault(state, key_file).revoke(key_id, reason)
    echo(f"key {key_id} revoked")


@app.command("rotate")
def rotate(
    state: StateOption,
    key_file: KeyFileOption = None,
    new_key_file: Annotated[
        Path, typer.Option("--new-key-file", help="The new vault key file.", show_default=False)
    ] = Path(),
) -> None:
    """Seal every data key under a new vault key (make it with `init-key` first)."""
    from custos.keybroker.vault import load_key_file

    count = _vault(state, key_file).rotate(load_key_file(new_key_file))
    echo(f"{count} key(s) now sealed under {new_key_file}; start the broker with --key-file {new_key_file}")


@app.command("measure")
def measure(json: JsonOption = False) -> None:
    """This installation's runtime measurement: what a gateway running this Custos reports."""
    from custos.attestation.software import measure_runtime

    value = measure_runtime()
    echo(jsonlib.dumps({"measurement": value}) if json else value)
