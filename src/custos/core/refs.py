"""Parsing of the references users type: `model@version` and `gateway/dataset`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from custos.core.errors import InvalidInput

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_VERSION = re.compile(r"^[0-9]+(\.[0-9]+){0,2}$")


def check_name(value: str, what: str) -> str:
    """Names of gateways, datasets and models: lower-case letters, digits, `.`, `_`, `-`."""
    if not _NAME.match(value):
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
    if not sep or not _VERSION.match(version):
        raise InvalidInput(f"model {text!r} must be written name@version, for example stats@1.0.0")
    return ModelRef(check_name(name, "model"), version)


def parse_dataset_ref(text: str) -> DatasetRef:
    gateway, sep, dataset = text.partition("/")
    if not sep:
        raise InvalidInput(f"dataset {text!r} must be written gateway/dataset, for example site-a/patients")
    return DatasetRef(check_name(gateway, "gateway"), check_name(dataset, "dataset"))
