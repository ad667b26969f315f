"""Custom code as a package: a folder with a `custos-model.toml` manifest, submitted for review.

A code package is built exactly as a model is (`build_archive`: the same folder always gives the same
bytes) and is bound by the SHA-256 of those bytes: a custodian's approval names that digest, so any
byte changed is a new request. It is not signed by a publisher: the custodian's approval is its
signature.

`verify_code_package` reads an archive entirely in memory, with the registry's checks (size, digest,
then every entry: no `..`, absolute path, link, device, duplicate or zip bomb) and then the manifest,
which must name an entrypoint `module:function` that the package holds and exactly one output, a
`table` (a DataFrame), `json` (a dict) or a `file` of one allowed type (bytes: `file_types = ["png"]`).
Nothing is unpacked: the sandbox imports the modules from memory
(`custos.computations.custom.importer`).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, replace
from pathlib import Path

from custos.computations.custom.disclosure import OutputCaps
from custos.computations.custom.files import FILE_TYPES, file_output
from custos.core.errors import InvalidInput
from custos.core.schema import DatasetSchema
from custos.core.wire import MAX_PACKAGE_BYTES, CodeOutput, package_digest
from custos.registry.archive import LIMITS, ArchiveLimits, BuiltArchive, build_archive
from custos.registry.manifest import (
    MANIFEST_FILE,
    FileOutput,
    JsonOutput,
    ModelManifest,
    TableOutput,
    parse_manifest,
)
from custos.registry.refusals import PackageRefused, Refusal
from custos.registry.verify import PackageFile, read_entries

CODE_LIMITS = ArchiveLimits(
    max_archive_bytes=MAX_PACKAGE_BYTES,
    max_entries=500,
    max_entry_bytes=4 * 1024 * 1024,
    max_total_bytes=16 * 1024 * 1024,
)
MAX_ENTRYPOINT_CHARS = 100
KIND = "code package"


@dataclass(frozen=True)
class CodePackage:
    """An archive that passed every check: its digest, manifest and files (in memory)."""

    digest: str
    manifest: ModelManifest
    files: tuple[PackageFile, ...]

    @property
    def entrypoint(self) -> str:
        return self.manifest.entrypoint

    @property
    def output(self) -> CodeOutput:
        return code_output(self.manifest)

    def output_caps(self, caps: OutputCaps) -> OutputCaps:
        return manifest_caps(self.manifest, caps)

    def check_columns(self, schema: DatasetSchema, dataset: str) -> None:
        """Raise unless the dataset has every column the manifest's `[columns]` names, of its type."""
        types = {c.name: c.type for c in schema.columns}
        for name, wanted in self.manifest.columns.items():
            if name not in types:
                raise InvalidInput(f"{self.entrypoint} needs column {name!r}, which {dataset} does not have")
            if types[name] != wanted:
                raise InvalidInput(
                    f"{self.entrypoint} needs column {name!r} as {wanted}; in {dataset} it is {types[name]}"
                )

    def python_sources(self) -> dict[str, str]:
        """Every `.py` file's text, by path: what a custodian reads before approving."""
        return {
            f.path: f.data.decode("utf-8", errors="replace") for f in self.files if f.path.endswith(".py")
        }


def manifest_caps(manifest: ModelManifest, caps: OutputCaps) -> OutputCaps:
    """`caps` tightened by the manifest's own for its one output: a package may promise less, never
    get more than the gateway allows."""
    code_output(manifest)  # exactly one output
    ((_, output),) = manifest.outputs.items()
    if isinstance(output, TableOutput):
        return replace(caps, rows=min(caps.rows, output.max_rows))
    if isinstance(output, JsonOutput):
        return replace(caps, json_bytes=min(caps.json_bytes, output.max_bytes))
    return replace(caps, file_bytes=min(caps.file_bytes, output.max_bytes))


def code_output(manifest: ModelManifest) -> CodeOutput:
    """The one output a code package declares: table, json or file:TYPE; else InvalidInput."""
    outputs = list(manifest.outputs.items())
    if len(outputs) != 1:
        declared = ", ".join(f"{name} ({o.kind})" for name, o in outputs)
        raise InvalidInput(
            f"{MANIFEST_FILE} declares the outputs {declared}; a code package declares exactly one, "
            'of kind "table" (a DataFrame), "json" (a dict) or "file" (bytes)'
        )
    name, output = outputs[0]
    if isinstance(output, TableOutput | JsonOutput):
        return output.kind
    assert isinstance(output, FileOutput)
    if len(output.file_types) != 1:
        raise InvalidInput(
            f"outputs.{name}.file_types is {output.file_types}; a code package's file has exactly one "
            f"type, one of {', '.join(FILE_TYPES)}"
        )
    kind: CodeOutput = file_output(output.file_types[0])  # type: ignore[assignment]
    return kind


def module_files(entrypoint: str) -> tuple[str, str]:
    """The two files that may hold the module of `entrypoint` (module.py or module/__init__.py)."""
    module = entrypoint.split(":")[0].replace(".", "/")
    return f"{module}.py", f"{module}/__init__.py"


def check_entrypoint(manifest: ModelManifest, paths: set[str]) -> None:
    """InvalidInput unless the entrypoint is short, names a module of the package, and not `custos`."""
    entrypoint = manifest.entrypoint
    if len(entrypoint) > MAX_ENTRYPOINT_CHARS:
        raise InvalidInput(
            f"entrypoint {entrypoint[:40]!r}… is longer than {MAX_ENTRYPOINT_CHARS} characters"
        )
    if entrypoint.split(".")[0].split(":")[0] == "custos":
        raise InvalidInput(f"entrypoint {entrypoint!r} is in package custos; name your own module")
    if not any(p in paths for p in module_files(entrypoint)):
        raise InvalidInput(
            f"entrypoint {entrypoint!r} names module {entrypoint.split(':')[0]}, but the package holds "
            f"neither {' nor '.join(module_files(entrypoint))}"
        )


def build_code_package(folder: Path) -> BuiltArchive:
    """The deterministic archive of the code package in `folder`, checked as a gateway checks it."""
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a folder; a code package is a folder with {MANIFEST_FILE}")
    if not (folder / MANIFEST_FILE).is_file():
        raise InvalidInput(f"{folder} has no {MANIFEST_FILE}; a code package is a folder with one")
    # Built under the registry's archive cap, so that the message below names the code package's own.
    built = build_archive(folder, replace(CODE_LIMITS, max_archive_bytes=LIMITS.max_archive_bytes))
    if built.size > MAX_PACKAGE_BYTES:
        raise InvalidInput(
            f"the archive of {folder} has {built.size} bytes; a code package may have {MAX_PACKAGE_BYTES}"
        )
    verify_code_package(built.data, built.digest)
    return built


def verify_code_package(data: bytes, digest: str | None = None) -> CodePackage:
    """The package in `data` once every check of the module docstring passes; else PackageRefused.
    `digest`, when given, is the digest the archive must have."""
    what = f"the {KIND}"
    if len(data) > CODE_LIMITS.max_archive_bytes:
        raise PackageRefused(
            Refusal.TOO_LARGE,
            f"{what} has {len(data)} bytes; a code package may have {CODE_LIMITS.max_archive_bytes}",
            kind=KIND,
        )
    actual = package_digest(data)
    if digest is not None and not hmac.compare_digest(actual, digest):
        raise PackageRefused(
            Refusal.DIGEST_MISMATCH,
            f"the archive's SHA-256 is {actual}, not {digest}: it was changed after it was submitted",
            kind=KIND,
        )
    try:
        files = read_entries(data, what, CODE_LIMITS)
    except PackageRefused as exc:
        raise PackageRefused(exc.reason, exc.detail, kind=KIND) from None
    found = next((f for f in files if f.path == MANIFEST_FILE), None)
    if found is None:
        raise PackageRefused(
            Refusal.MANIFEST_MISSING, f"{what} has no {MANIFEST_FILE} at its root", kind=KIND
        )
    try:
        manifest = parse_manifest(found.data)
        code_output(manifest)
        check_entrypoint(manifest, {f.path for f in files})
    except InvalidInput as exc:
        raise PackageRefused(Refusal.MANIFEST_INVALID, exc.message, kind=KIND) from exc
    return CodePackage(digest=actual, manifest=manifest, files=files)
