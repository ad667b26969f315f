"""The manifest of a model package: `custos-model.toml` at the root of the package's folder.

    name = "cohort-summary"
    version = "1.0.0"
    entrypoint = "cohort_summary.main:run"      # module:function or module:Class
    description = "Counts and means per region"

    [parameters.min_age]                        # what a job may pass, and nothing else
    type = "integer"
    minimum = 0
    default = 18

    [columns]                                   # the column types the model reads
    age = "integer"
    region = "string"

    [outputs.summary]                           # what the model may return
    kind = "table"
    max_rows = 1000

A manifest with an unknown field, a wrong type or a bad value is refused with an InvalidInput that
names the field and what is accepted.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from custos.core.errors import InvalidInput
from custos.core.refs import check_name
from custos.core.schema import ColumnType

MANIFEST_FILE = "custos-model.toml"
MAX_MANIFEST_BYTES = 64 * 1024

_ENTRYPOINT = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$", re.ASCII)
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_COLUMN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_. -]{0,127}$")
_FILE_TYPE = re.compile(r"^[a-z0-9]{1,10}$")
_VERSION = re.compile(r"^[0-9]+(\.[0-9]+){0,2}$")

ParamType = Literal["integer", "number", "string", "boolean", "array"]
ItemType = Literal["integer", "number", "string", "boolean"]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Parameter(_Strict):
    """One job parameter: a JSON-schema-like subset."""

    type: ParamType
    description: str = Field("", max_length=1000)
    required: bool = False
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    enum: list[Any] | None = Field(None, max_length=200)
    items: ItemType | None = None
    max_items: int | None = Field(None, ge=0, le=100_000)
    max_length: int | None = Field(None, ge=0, le=100_000)

    @model_validator(mode="after")
    def _consistent(self) -> Parameter:
        numeric = self.type in ("integer", "number")
        if (self.minimum is not None or self.maximum is not None) and not numeric:
            raise ValueError(f"minimum and maximum apply to integer and number, not {self.type}")
        if (self.items is not None or self.max_items is not None) and self.type != "array":
            raise ValueError(f"items and max_items apply to array, not {self.type}")
        if self.type == "array" and self.items is None:
            raise ValueError("an array parameter needs items = integer, number, string or boolean")
        if self.max_length is not None and self.type != "string":
            raise ValueError(f"max_length applies to string, not {self.type}")
        if self.required and self.default is not None:
            raise ValueError("a required parameter has no default")
        if self.default is not None:
            self.check("default", self.default)
        return self

    def check(self, name: str, value: Any) -> None:
        """Raise ValueError naming `name` unless `value` fits this parameter."""
        _check_type(name, value, self.type, self.items)
        if self.enum is not None and value not in self.enum:
            raise ValueError(f"{name} is {value!r}; accepted: {', '.join(map(repr, self.enum))}")
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"{name} is {value}; the minimum is {self.minimum:g}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"{name} is {value}; the maximum is {self.maximum:g}")
        if self.max_items is not None and len(value) > self.max_items:
            raise ValueError(f"{name} has {len(value)} items; at most {self.max_items}")
        if self.max_length is not None and len(value) > self.max_length:
            raise ValueError(f"{name} has {len(value)} characters; at most {self.max_length}")


def _check_type(name: str, value: Any, kind: str, items: str | None) -> None:
    ok = {
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "string": isinstance(value, str),
        "boolean": isinstance(value, bool),
        "array": isinstance(value, list),
    }[kind]
    if not ok:
        raise ValueError(f"{name} must be {'an' if kind[0] in 'aeiou' else 'a'} {kind}, not {value!r}")
    if kind == "array" and items is not None:
        for i, item in enumerate(value):
            _check_type(f"{name}[{i}]", item, items, None)


class TableOutput(_Strict):
    kind: Literal["table"]
    description: str = Field("", max_length=1000)
    max_rows: int = Field(ge=1, le=10_000_000)


class FileOutput(_Strict):
    kind: Literal["file"]
    description: str = Field("", max_length=1000)
    max_bytes: int = Field(ge=1, le=256 * 1024 * 1024)
    file_types: list[str] = Field(min_length=1, max_length=20)

    @field_validator("file_types")
    @classmethod
    def _types(cls, value: list[str]) -> list[str]:
        for t in value:
            if not _FILE_TYPE.match(t):
                raise ValueError(f"file type {t!r} must be a lower-case extension without a dot, e.g. png")
        return value


class JsonOutput(_Strict):
    kind: Literal["json"]
    description: str = Field("", max_length=1000)
    max_bytes: int = Field(ge=1, le=16 * 1024 * 1024)


Output = Annotated[TableOutput | FileOutput | JsonOutput, Field(discriminator="kind")]


class ModelManifest(_Strict):
    name: str
    version: str
    entrypoint: str
    description: str = Field("", max_length=4000)
    parameters: dict[str, Parameter] = Field(default_factory=dict, max_length=100)
    columns: dict[str, ColumnType] = Field(default_factory=dict, max_length=1000)
    outputs: dict[str, Output] = Field(min_length=1, max_length=32)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        try:
            return check_name(value, "model name")
        except InvalidInput as exc:
            raise ValueError(exc.message) from exc

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not _VERSION.match(value):
            raise ValueError(f"version {value!r} must be 1 to 3 numbers separated by dots, e.g. 1.0.0")
        return value

    @field_validator("entrypoint")
    @classmethod
    def _entrypoint(cls, value: str) -> str:
        if not _ENTRYPOINT.match(value):
            raise ValueError(
                f"{value!r} must be module:function or module:Class, e.g. cohort_summary.main:run"
            )
        return value

    @model_validator(mode="after")
    def _names(self) -> ModelManifest:
        for label, names, pattern in (
            ("parameter", self.parameters, _FIELD),
            ("output", self.outputs, _FIELD),
            ("column", self.columns, _COLUMN),
        ):
            for key in names:
                if not pattern.match(key):
                    raise ValueError(f"{label} name {key!r} is not a plain identifier")
        return self

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """`params` with defaults filled in; InvalidInput naming the first parameter that does not fit."""
        unknown = sorted(set(params) - set(self.parameters))
        if unknown:
            accepted = ", ".join(sorted(self.parameters)) or "none"
            raise InvalidInput(f"{self.ref} has no parameter {unknown[0]!r}; accepted: {accepted}")
        filled: dict[str, Any] = {}
        for name, spec in self.parameters.items():
            if name not in params:
                if spec.required:
                    raise InvalidInput(f"{self.ref} needs the parameter {name!r} ({spec.type})")
                if spec.default is not None:
                    filled[name] = spec.default
                continue
            try:
                spec.check(name, params[name])
            except ValueError as exc:
                raise InvalidInput(f"{self.ref}: {exc}") from exc
            filled[name] = params[name]
        return filled


def parse_manifest(text: bytes | str, source: str = MANIFEST_FILE) -> ModelManifest:
    """The manifest in `text`, or InvalidInput naming the field and what is accepted."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    if len(raw) > MAX_MANIFEST_BYTES:
        raise InvalidInput(f"{source} is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{source} is not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{source} is not valid TOML: {exc}") from exc
    try:
        return ModelManifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = list(first["loc"])
        if len(loc) >= 3 and loc[0] == "outputs" and loc[2] in _UNION_TAGS:
            del loc[2]  # pydantic's tag of the output kind: the field is outputs.NAME.FIELD
        where = ".".join(str(p) for p in loc)
        message = str(first["msg"]).removeprefix("Value error, ")
        raise InvalidInput(f"{source}: {where}: {message}" if where else f"{source}: {message}") from exc


_UNION_TAGS = frozenset({"table", "file", "json"})


def load_manifest(folder: Path) -> ModelManifest:
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise InvalidInput(f"{folder} has no {MANIFEST_FILE}; a model package is a folder with one")
    return parse_manifest(path.read_bytes(), source=str(path.name))
