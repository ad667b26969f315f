"""`custos model publish|list|show`: the model registry (built-in models and signed packages)."""

from __future__ import annotations

import json as jsonlib
import re
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from custos.cli.options import JsonOption, KitOption, open_client, split_values
from custos.cli.output import key_value_table, print_json, stdout
from custos.core.errors import InvalidInput
from custos.core.wire import ModelDetail, ModelKind, ModelPublic
from custos.core.wire.keybroker import KeyPolicy
from custos.pki.kit import load_kit
from custos.registry import build_archive, seal_archive
from custos.sdk import Client
from custos.sdk.tables import add_row

app = typer.Typer(help="Publish model packages and look up the registry.", no_args_is_help=True)

RefArgument = Annotated[str, typer.Argument(help="name@version, e.g. stats@1.0.0.", show_default=False)]
FolderArgument = Annotated[
    Path, typer.Argument(help="The package folder, with custos-model.toml at its root.", show_default=False)
]


def _digest(digest: str | None) -> str:
    return f"sha256:{digest[:16]}…" if digest else ""


def models_table(models: Sequence[ModelPublic]) -> Table:
    table = Table(title="models", box=box.SIMPLE_HEAD, title_justify="left")
    for column in ("model", "kind", "digest", "signer", "description"):
        table.add_column(column, no_wrap=column != "description")
    for m in models:
        signer = f"{m.signer} ({m.signer_org})" if m.signer else ""
        add_row(table, f"{m.name}@{m.version}", m.kind, _digest(m.digest), signer, m.description)
    return table


def model_table(model: ModelDetail) -> Table:
    rows: list[tuple[str, str]] = [
        ("model", f"{model.name}@{model.version}"),
        ("kind", model.kind),
        ("description", model.description),
    ]
    if model.kind in (ModelKind.PACKAGE, ModelKind.CONFIDENTIAL) and model.manifest is not None:
        manifest = model.manifest
        rows += [
            ("digest", f"sha256:{model.digest}"),
            ("size", f"{model.size} bytes"),
            ("signer", f"{model.signer} ({model.signer_org})"),
            ("published", model.published_at.strftime("%Y-%m-%d %H:%M:%S") if model.published_at else ""),
            ("entrypoint", str(manifest.get("entrypoint", ""))),
            ("parameters", _parameters(manifest.get("parameters") or {})),
            ("columns", ", ".join(f"{k} ({v})" for k, v in (manifest.get("columns") or {}).items())),
            ("outputs", _outputs(manifest.get("outputs") or {})),
        ]
    if model.confidential is not None:
        terms = model.confidential
        rows += [
            ("code", "encrypted: only an attested runtime gets its key"),
            ("plaintext", f"sha256:{terms.plaintext_digest}"),
            ("key", terms.key_id),
            ("broker", terms.broker_url),
            ("measurements", ", ".join(terms.measurements)),
        ]
    return key_value_table(f"model {model.name}@{model.version}", rows)


def _parameters(parameters: dict[str, dict[str, object]]) -> str:
    parts = []
    for name, spec in parameters.items():
        flags = " required" if spec.get("required") else ""
        default = f" = {jsonlib.dumps(spec['default'])}" if spec.get("default") is not None else ""
        parts.append(f"{name}: {spec.get('type')}{flags}{default}")
    return ", ".join(parts)


def _outputs(outputs: dict[str, dict[str, object]]) -> str:
    parts = []
    for name, spec in outputs.items():
        kind = spec.get("kind")
        if kind == "table":
            parts.append(f"{name}: table ≤ {spec.get('max_rows')} rows")
        elif kind == "file":
            listed = spec.get("file_types")
            types = ",".join(str(t) for t in listed) if isinstance(listed, list) else ""
            parts.append(f"{name}: file {types} ≤ {spec.get('max_bytes')} bytes")
        else:
            parts.append(f"{name}: {kind} ≤ {spec.get('max_bytes')} bytes")
    return ", ".join(parts)


@app.command("publish")
def publish_model(
    folder: FolderArgument,
    kit: KitOption,
    confidential: Annotated[
        bool, typer.Option("--confidential", help="Encrypt the package; its key goes to --broker only.")
    ] = False,
    broker: Annotated[
        str | None, typer.Option("--broker", help="Your key broker's URL, e.g. https://127.0.0.1:9443.")
    ] = None,
    measurement: Annotated[
        list[str] | None,
        typer.Option("--measurement", help="An allowed runtime (default: this installation's); repeatable."),
    ] = None,
    gateway: Annotated[
        list[str] | None, typer.Option("--gateway", help="Release the key to this gateway only; repeatable.")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Build the package's deterministic archive, sign it with your kit's key and publish it. With
    --confidential, encrypt it under a fresh data key, deposit the key at your broker, then publish the
    ciphertext and its signed terms."""
    if confidential != (broker is not None):
        raise InvalidInput("--confidential and --broker URL go together: the data key goes to your broker")
    with open_client(kit) as client:
        if broker is None:
            model = client.publish_model(folder)
        else:
            model = _publish_confidential(client, folder, kit, broker, measurement or [], gateway or [])
    if json:
        print_json(model)
    else:
        stdout().print(model_table(model))


def _publish_confidential(
    client: Client, folder: Path, kit: Path, broker: str, measurements: list[str], gateways: list[str]
) -> ModelDetail:
    from custos.attestation.software import measure_runtime
    from custos.sdk.keybroker import OwnerBrokerClient

    built = build_archive(folder)
    key_id = f"{re.sub(r'[^A-Za-z0-9_-]', '-', built.manifest.ref)}-{secrets.token_hex(4)}"[-64:]
    sealed = seal_archive(
        built,
        key_id=key_id,
        broker_url=broker,
        measurements=split_values(measurements) or [measure_runtime()],
    )
    policy = KeyPolicy(
        package=built.manifest.ref, ciphertext_digest=sealed.digest, plaintext_digest=built.digest,
        measurements=sealed.terms.measurements, gateways=split_values(gateways),
    )  # fmt: skip
    owner = load_kit(kit)
    with OwnerBrokerClient(broker, owner) as keys:
        keys.deposit(key_id, sealed.data_key, policy)  # first: a published package always has its key
    return client.publish_confidential(sealed, kit=kit)


@app.command("list")
def list_models(kit: KitOption, json: JsonOption = False) -> None:
    """Every model in the registry: built-in ones and published packages."""
    with open_client(kit) as client:
        models = client.models()
    if json:
        print_json(models)
    else:
        stdout().print(models_table(models))


@app.command("show")
def show_model(ref: RefArgument, kit: KitOption, json: JsonOption = False) -> None:
    """One registry entry; for a package, its digest, signer and manifest."""
    with open_client(kit) as client:
        model = client.model(ref)
    if json:
        print_json(model)
    else:
        stdout().print(model_table(model))
