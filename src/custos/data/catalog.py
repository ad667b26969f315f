"""The custodian's catalogue of datasets (DATASETS.yaml): which files the gateway serves, under what name.

    datasets:
      - name: patients              # lower-case letters, digits, '.', '_', '-'
        path: data/patients.parquet # relative to this YAML file; .csv or .parquet
        description: Synthetic patient cohort
        policy: patients.policy.json   # optional; default "<name>.policy.json" beside DATASETS.yaml
        licence: CC BY 4.0, research use only   # optional: the licence or terms of use
        columns:                      # optional: what a column means, and its unit
          age: {description: Age at enrolment, unit: years}

The paths stay at the gateway: only names, descriptions, licence, column notes and what profiling
derives are published. The owner org is not written here: the orchestrator takes it from the
gateway's certificate. A described column must exist in the file (`describe_schema`, after profiling).
A missing policy file is not an error here: no policy means no access.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from custos.core.errors import InvalidInput
from custos.core.refs import check_name
from custos.core.schema import DatasetSchema
from custos.core.yamltext import parse_yaml_mapping

MAX_CATALOG_BYTES = 1 << 20

_TOP_KEYS = ("datasets",)
_ENTRY_KEYS = ("name", "path", "description", "policy", "licence", "columns")
_COLUMN_KEYS = ("description", "unit")
# Catalogue text is published to every researcher; each piece is bounded.
MAX_TEXT_CHARS = {"description": 4000, "licence": 2000, "unit": 40}
MAX_COLUMN_DESCRIPTION_CHARS = 1000
_FORMATS: dict[str, Literal["csv", "parquet"]] = {".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class ColumnNote:
    """What the custodian says about one column: its meaning and its unit."""

    description: str = ""
    unit: str = ""


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset of the catalogue; `path` and `policy_path` are absolute."""

    name: str
    path: Path
    format: Literal["csv", "parquet"]
    description: str
    policy_path: Path
    licence: str = ""
    columns: Mapping[str, ColumnNote] = field(default_factory=dict)


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
    policy = _text(where, item, "policy", required=False) or f"{name}.policy.json"
    return DatasetEntry(
        name=name,
        path=file.resolve(),
        format=_FORMATS[suffix],
        description=_text(where, item, "description", required=False),
        policy_path=(base / policy).resolve(),
        licence=_text(where, item, "licence", required=False),
        columns=_column_notes(where, item.get("columns")),
    )


def _column_notes(where: str, value: object) -> dict[str, ColumnNote]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{where}: columns must be a mapping of column name to {{description, unit}}")
    notes: dict[str, ColumnNote] = {}
    for column, note in value.items():
        at = f"{where}: columns.{column}"
        if not isinstance(column, str) or not column:
            raise InvalidInput(f"{where}: columns: {column!r} is not a column name")
        if not isinstance(note, dict):
            raise InvalidInput(f"{at}: expected a mapping with keys {', '.join(_COLUMN_KEYS)}")
        _check_keys(at, note, _COLUMN_KEYS)
        description = _text(at, note, "description", required=False)
        if len(description) > MAX_COLUMN_DESCRIPTION_CHARS:
            raise InvalidInput(
                f"{at}: description has {len(description)} characters; at most "
                f"{MAX_COLUMN_DESCRIPTION_CHARS} are published"
            )
        notes[column] = ColumnNote(description=description, unit=_text(at, note, "unit", required=False))
    return notes


def describe_schema(entry: DatasetEntry, schema: DatasetSchema) -> DatasetSchema:
    """`schema` (as profiled from the file) with the catalogue's licence and column notes. A note on a
    column the file does not have is refused, naming the columns it has."""
    missing = sorted(set(entry.columns) - set(schema.names))
    if missing:
        raise InvalidInput(
            f"dataset {entry.name}: DATASETS.yaml describes column {missing[0]!r}, which the file does "
            f"not have; its columns: {', '.join(schema.names)}"
        )
    columns = [
        column.model_copy(update={"description": note.description, "unit": note.unit})
        if (note := entry.columns.get(column.name))
        else column
        for column in schema.columns
    ]
    return schema.model_copy(update={"columns": columns, "licence": entry.licence})


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
    limit = MAX_TEXT_CHARS.get(key)
    if limit is not None and len(value) > limit:
        raise InvalidInput(f"{where}: {key} has {len(value)} characters; at most {limit} are published")
    return value
