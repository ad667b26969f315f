"""The catalogue of built-in models."""

from __future__ import annotations

import pytest

from custos.computations.registry import get_model, list_models
from custos.core.errors import NotFound


def test_stats_is_found_by_name_and_version() -> None:
    model = get_model("stats", "1.0.0")
    assert (model.name, model.version) == ("stats", "1.0.0")
    assert [(m.name, m.version) for m in list_models()] == [
        ("stats", "1.0.0"),
        ("glm", "1.0.0"),
        ("fedavg", "1.0.0"),
    ]


@pytest.mark.parametrize(("name", "version"), [("x", "1.0"), ("stats", "2.0.0"), ("stats", "1.0")])
def test_an_unknown_model_is_not_found_and_the_message_lists_what_is_available(
    name: str, version: str
) -> None:
    with pytest.raises(NotFound) as caught:
        get_model(name, version)
    assert (
        str(caught.value)
        == f"unknown model {name}@{version}; available: stats@1.0.0, glm@1.0.0, fedavg@1.0.0"
    )
