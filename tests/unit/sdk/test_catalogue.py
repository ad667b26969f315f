"""Searching the dataset catalogue from the SDK, and how a described dataset shows in a notebook."""

from __future__ import annotations

from typing import Any

import pytest

from custos.core.errors import InvalidInput

from .conftest import ScriptedServer

DESCRIBED: dict[str, Any] = {
    "id": "site-a/patients",
    "gateway": "site-a",
    "name": "patients",
    "description": "Adult cohort",
    "schema": {
        "columns": [
            {
                "name": "age",
                "type": "integer",
                "kind": "numeric",
                "description": "Age at enrolment",
                "unit": "years",
            }
        ],
        "licence": "Research use <only>",
    },
    "row_count": 1000,
    "policy_yaml": None,
    "owner_org": "hospital-a",
}


def test_search_sends_the_text_as_a_query_and_keeps_the_order(server: ScriptedServer) -> None:
    other = {**DESCRIBED, "id": "site-b/visits", "gateway": "site-b", "name": "visits"}
    server.reply("GET", "/api/v1/datasets?q=age+years%26x", (200, [other, DESCRIBED]))
    with server.client() as client:
        found = client.search_datasets("age years&x")
    assert [d.id for d in found] == ["site-b/visits", "site-a/patients"]


def test_a_blank_search_is_refused_before_sending(server: ScriptedServer) -> None:
    with server.client() as client, pytest.raises(InvalidInput, match="at least one word"):
        client.search_datasets("   ")
    assert server.requests == []


def test_a_described_dataset_shows_owner_licence_and_units(server: ScriptedServer) -> None:
    server.reply("GET", "/api/v1/datasets/site-a/patients", (200, DESCRIBED))
    with server.client() as client:
        dataset = client.dataset("site-a/patients")
    assert dataset.owner_org == "hospital-a"
    assert dataset.licence == "Research use <only>"
    assert repr(dataset) == "<Dataset site-a/patients owner=hospital-a rows≈1000 columns=['age']>"
    page = dataset._repr_html_()
    assert "held by hospital-a" in page
    assert "licence: Research use &lt;only&gt;" in page
    assert "<td>years</td>" in page and "<td>Age at enrolment</td>" in page
    assert list(dataset.schema_frame()["unit"]) == ["years"]
