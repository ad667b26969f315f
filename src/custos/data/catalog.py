"""The custodian's catalogue of datasets (DATASETS.yaml): which files the gateway serves, under what name.

    datasets:
      - name: patients              # lower-case letters, digits, '.', '_', '-'
        path: data/patients.parquet # relative to this YAML file; .csv or .parquet
        description: Synthetic patient cohort
        policy: patients.policy.yaml   # optional; default "<name>.policy.yaml" beside DATASETS.yaml

The paths stay at the gateway: only names, descriptions and what profiling derives are published.
A missing policy file is not an error here: no policy means no access.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from custos.core.errors import InvalidInput
from custos.core.refs import check_name
from custos.core.yamltext import parse_yaml_mapping

MAX_CATALOG_BYTES = 1 << 20

_TOP_KEYS = ("datasets",)
_ENTRY_KEYS = ("name", "path", "description", "policy")
_FORMATS: dict[str, Literal["csv", "parquet"]] = {".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset of the catalogue; `path` and `policy_path` are absolute."""

    name: str
    path: Path
    format: Literal["csv", "parquet"]
    description: str
    policy_path: Path


def load_catalog(path: Path) -> list[DatasetEntry]:
    """Read and check DATASETS.yaml. Raises InvalidInput with one sentence naming the problem."""
    source = path.name
    if not path.is_file():
        raise InvalidInput(f"dataset catalogue {source} not found; create it with a 'datasets:' list")
    data = parse_yaml_mapping(
        path.read_bytes(), source, max_bytes=MAX_CATALOG_BYTES, expected="the key 'datasets'"
    )
    _check_keys(source, data, _TOP_KEYS)
    items = data.get("datasets")
    if items is None:
        return []
    if not isinstance(items, list):
        raise InvalidInput(f"{source}: datasets must be a list of entries with name and path")
    base = path.resolve().parent
    entries: list[DatasetEntry] = []
    names: set[str] = set()
    for index, item in enumerate(items):
        entry = _entry(source, index, item, base)
        if entry.name in names:
            raise InvalidInput(f"{source}: dataset name {entry.name!r} appears twice; names must be unique")
        names.add(entry.name)
        entries.append(entry)
    return entries


def _entry(source: str, index: int, item: object, base: Path) -> DatasetEntry:
    where = f"{source}: datasets[{index}]"
    if not isinstance(item, dict):
        raise InvalidInput(f"{where}: expected a mapping with keys {', '.join(_ENTRY_KEYS)}")
    _check_keys(where, item, _ENTRY_KEYS)
    name = _text(where, item, "name", required=True)
    try:
        check_name(name, "dataset")
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc.message}") from None
    where = f"{source}: dataset {name}"
    given = _text(where, item, "path", required=True)
    file = base / given
    suffix = file.suffix.lower()
    if suffix not in _FORMATS:
        raise InvalidInput(f"{where}: file {given} has an unsupported type; use a .csv or .parquet file")
    if not file.is_file():
        raise InvalidInput(f"dataset {name}: file {given} not found")
    policy = _text(where, item, "policy", required=False) or f"{name}.policy.yaml"
    return DatasetEntry(
        name=name,
        path=file.resolve(),
        format=_FORMATS[suffix],
        description=_text(where, item, "description", required=False),
        policy_path=(base / policy).resolve(),
    )


def _check_keys(where: str, data: dict[Any, Any], accepted: tuple[str, ...]) -> None:
    unknown = sorted(str(k) for k in data if k not in accepted)
    if unknown:
        raise InvalidInput(f"{where}: unknown key {unknown[0]!r}; accepted keys: {', '.join(accepted)}")


def _text(where: str, item: dict[Any, Any], key: str, *, required: bool) -> str:
    value = item.get(key)
    if value is None:
        if required:
            raise InvalidInput(f"{where}: {key} is missing")
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidInput(f"{where}: {key} must be a non-empty string")
    return value
