"""Parsing of the references users type: `model@version` and `gateway/dataset`.

The patterns are stated in the API's description too (`NameText`, `ModelRefText`, `DatasetRefText`
on wire fields and path parameters): the description says what the parsers here accept, and the
parsers give the message that says so. A whole string must match (`fullmatch`), as in JSON Schema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from custos.core.errors import InvalidInput

_NAME_CHARS = r"[a-z0-9][a-z0-9._-]{0,62}"
_VERSION_CHARS = r"[0-9]+(\.[0-9]+){0,2}"
NAME_PATTERN = rf"^{_NAME_CHARS}$"
VERSION_PATTERN = rf"^{_VERSION_CHARS}$"
MODEL_REF_PATTERN = rf"^{_NAME_CHARS}@{_VERSION_CHARS}$"
DATASET_REF_PATTERN = rf"^{_NAME_CHARS}/{_NAME_CHARS}$"
_NAME = re.compile(NAME_PATTERN)
_VERSION = re.compile(VERSION_PATTERN)

# Wire types that state the patterns in the API's description; the services parse them with the
# functions below, whose refusal names the value and what is accepted.
NameText = Annotated[
    str, Field(json_schema_extra={"pattern": NAME_PATTERN}, description="lower-case letters, digits, . _ -")
]
VersionText = Annotated[str, Field(json_schema_extra={"pattern": VERSION_PATTERN}, description="e.g. 1.0.0")]
ModelRefText = Annotated[
    str, Field(json_schema_extra={"pattern": MODEL_REF_PATTERN}, description="name@version, e.g. stats@1.0.0")
]
DatasetRefText = Annotated[
    str,
    Field(
        json_schema_extra={"pattern": DATASET_REF_PATTERN},
        description="gateway/dataset, e.g. site-a/patients",
    ),
]


def check_name(value: str, what: str) -> str:
    """Names of gateways, datasets and models: lower-case letters, digits, `.`, `_`, `-`."""
    if not _NAME.fullmatch(value):
        raise InvalidInput(
            f"{what} {value!r} is not a valid name; use 1-63 lower-case letters, digits, '.', '_' or '-'"
        )
    return value


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class DatasetRef:
    gateway: str
    dataset: str

    def __str__(self) -> str:
        return f"{self.gateway}/{self.dataset}"


def parse_model_ref(text: str) -> ModelRef:
    name, sep, version = text.partition("@")
    if not sep or not _VERSION.fullmatch(version):
        raise InvalidInput(f"model {text!r} must be written name@version, for example stats@1.0.0")
    return ModelRef(check_name(name, "model"), version)


def parse_dataset_ref(text: str) -> DatasetRef:
    gateway, sep, dataset = text.partition("/")
    if not sep:
        raise InvalidInput(f"dataset {text!r} must be written gateway/dataset, for example site-a/patients")
    return DatasetRef(check_name(gateway, "gateway"), check_name(dataset, "dataset"))
