"""Published registry packages (`custos model publish`) run as models.

A spec may name a published package (`cohort-summary@1.0.0`) as it names a built-in model, and a
policy grants it the same way. A job has one round: each gateway fetches the archive from the
orchestrator, verifies its digest and signature, caches it by digest (`custos.gateway.model_cache`),
and runs the manifest's entrypoint, `fn(dal, [dataset], params)`, in the sandbox, reading only the
columns the manifest's `[columns]` declares, through the custom-code runner. Each site's output is
checked against the manifest's one output (type and cap), and the result — every site's output — is
held for release review as custom code's is: the code is the publisher's, not the custodian's.

`PackageModel` is the model as the orchestrator and gateways see it (parameters, columns, rounds);
`PackageRunner` (`package@1.0.0`) is what runs in the sandbox, given the verified archive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from custos.computations.base import DalReader, Disclosure, Final, NextRound, Step
from custos.computations.custom.wire import encode_output
from custos.core.errors import InvalidInput, PolicyDenied
from custos.core.schema import DatasetSchema
from custos.privacy.controls import DpSettings
from custos.privacy.plan import DpPlan

if TYPE_CHECKING:  # the sandbox imports this module; it needs no manifest parser
    from custos.registry.manifest import ModelManifest

Json = dict[str, Any]
PACKAGE_KEY = "package"


class PackageRunner:
    """`package@1.0.0`: runs a verified package archive handed to it in the round input
    ({"package": {"archive": bytes, "entrypoint", "output"}}). Only a gateway builds that input."""

    name: str = "package"
    version: str = "1.0.0"

    def validate_params(
        self, params: Mapping[str, Any], schema: DatasetSchema, columns: Sequence[str]
    ) -> None:
        raise InvalidInput("package@1.0.0 runs a published package; name the package in the spec instead")

    def columns_used(self, params: Mapping[str, Any]) -> list[str]:
        return []

    def start(self, params: Mapping[str, Any]) -> NextRound:
        raise InvalidInput("package@1.0.0 runs a published package; name the package in the spec instead")

    def aggregate(
        self, params: Mapping[str, Any], state: Json, site_results: Mapping[str, Json], rules: Disclosure
    ) -> Step:
        return Final({"sites": {ref: dict(result) for ref, result in sorted(site_results.items())}})

    def compute_site(
        self, dal: DalReader, dataset: str, params: Mapping[str, Any], round_input: Json
    ) -> Json:
        from custos.computations.custom.importer import package_function

        package = round_input.get(PACKAGE_KEY)
        confidential = isinstance(package, dict) and "sealed" in package
        if isinstance(package, dict) and confidential:
            from custos.computations.package.confidential import open_package

            package = package | {"archive": open_package(package)}  # in this process's memory only
        if not isinstance(package, dict) or not isinstance(package.get("archive"), bytes):
            raise InvalidInput("the round input carries no package archive")
        try:
            with package_function(
                package["archive"], str(package["entrypoint"]), keep_source=not confidential
            ) as fn:
                return encode_output(fn(dal, [dataset], dict(params)), str(package["output"]))
        except SyntaxError as exc:
            if not confidential:
                raise
            # A SyntaxError carries the offending line's text; a confidential package's stays unread.
            raise InvalidInput(f"the package does not compile: {exc.msg} (line {exc.lineno})") from None

    def filter_site_result(self, params: Mapping[str, Any], result: Json, privacy: Disclosure) -> Json:
        """Unchanged: the gateway checks the output against the manifest's type and cap instead."""
        return result

    def plan_dp(self, params: Mapping[str, Any], schema: DatasetSchema, dp: DpSettings) -> DpPlan:
        raise PolicyDenied("a published package cannot run under a differential privacy policy")


class PackageModel(PackageRunner):
    """A published package as a model: its manifest's parameters, columns and single output."""

    def __init__(self, manifest: ModelManifest, digest: str) -> None:
        self.manifest, self.digest = manifest, digest
        self.name, self.version = manifest.name, manifest.version

    @property
    def output(self) -> str:
        """The manifest's one output (table, json or file:TYPE); InvalidInput for any other shape."""
        from custos.computations.custom.code_package import code_output  # not at the sandbox's start-up

        return code_output(self.manifest)

    def validate_params(
        self, params: Mapping[str, Any], schema: DatasetSchema, columns: Sequence[str]
    ) -> None:
        self.manifest.check_params(dict(params))
        self.output  # noqa: B018 - exactly one output, of a kind the runner can return
        check_manifest_columns(self.manifest, schema, columns)

    def columns_used(self, params: Mapping[str, Any]) -> list[str]:
        return sorted(self.manifest.columns)

    def start(self, params: Mapping[str, Any]) -> NextRound:
        return NextRound(
            round_input={PACKAGE_KEY: {"ref": self.manifest.ref, "digest": self.digest}}, state={}
        )


def check_manifest_columns(manifest: ModelManifest, schema: DatasetSchema, columns: Sequence[str]) -> None:
    """Raise unless every column the manifest reads is in the spec's `columns` and in the dataset's
    schema, with the type the manifest declares."""
    types = {c.name: c.type for c in schema.columns}
    for name, wanted in manifest.columns.items():
        if name not in columns:
            raise InvalidInput(f"{manifest.ref} reads column {name!r}; add it to the spec's columns")
        if name not in types:
            raise InvalidInput(f"{manifest.ref} reads column {name!r}, which the dataset does not have")
        if types[name] != wanted:
            raise InvalidInput(
                f"{manifest.ref} reads column {name!r} as {wanted}; the dataset has {types[name]}"
            )
