from __future__ import annotations

import pytest

from custos.core.errors import InvalidInput
from custos.core.refs import parse_dataset_ref, parse_model_ref


def test_model_and_dataset_refs_parse() -> None:
    assert str(parse_model_ref("stats@1.0.0")) == "stats@1.0.0"
    ref = parse_dataset_ref("site-a/patients")
    assert (ref.gateway, ref.dataset) == ("site-a", "patients")


@pytest.mark.parametrize("text", ["stats", "stats@", "stats@latest", "Stats@1.0", "@1.0"])
def test_bad_model_refs_say_what_is_accepted(text: str) -> None:
    with pytest.raises(InvalidInput, match=r"name@version|not a valid name"):
        parse_model_ref(text)


@pytest.mark.parametrize("text", ["patients", "site-a/", "/patients", "site a/patients", "../etc/passwd"])
def test_bad_dataset_refs_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_dataset_ref(text)
