from __future__ import annotations

import pytest

from custos.core.blobs import blob_digest, blob_ref, externalize, internalize, refs_in
from custos.core.errors import InvalidInput


def test_externalize_replaces_bytes_by_references_and_internalize_puts_them_back() -> None:
    value = {"phase": "train", "weights": b"abc", "history": [{"w": b"abc"}, {"w": b"de"}], "n": 3}
    message, blobs = externalize(value)
    assert message["weights"] == blob_ref(blob_digest(b"abc"), 3)
    assert blobs == {blob_digest(b"abc"): b"abc", blob_digest(b"de"): b"de"}
    assert refs_in(message) == {blob_digest(b"abc"): 3, blob_digest(b"de"): 2}
    assert internalize(message, lambda digest, _size: blobs[digest]) == value


def test_internalize_refuses_bytes_that_are_not_the_referenced_blob() -> None:
    message, _ = externalize({"weights": b"abc"})
    with pytest.raises(InvalidInput, match="does not match"):
        internalize(message, lambda _digest, _size: b"abd")


def test_a_malformed_reference_is_refused() -> None:
    with pytest.raises(InvalidInput, match="SHA-256"):
        refs_in({"w": {"$blob": "../../etc/passwd", "size": 3}})
