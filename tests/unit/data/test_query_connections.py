"""Connections to the process's shared DuckDB database: each read's registered table is its own, and
reads on many threads at once each see only their own."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import duckdb
import pyarrow as pa
import pytest

from custos.data.query import connect, private_connect
from custos.data.table_reader import TableDalReader


def test_a_table_one_connection_registers_is_not_seen_by_another() -> None:
    first, second = connect(), connect()
    try:
        first.register("src", pa.table({"secret": [1, 2, 3]}))
        assert first.sql("SELECT count(*) FROM src").fetchall() == [(3,)]
        with pytest.raises(duckdb.CatalogException):
            second.sql("SELECT * FROM src").fetchall()
    finally:
        first.close()
        second.close()


def test_reads_on_many_threads_each_see_their_own_table() -> None:
    def read(i: int) -> list[int]:
        reader = TableDalReader({"t": pa.table({"v": [i] * (i + 1)})})
        return [reader.read("t", ["v"]).num_rows for _ in range(20)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(read, range(16)))
    assert results == [[i + 1] * 20 for i in range(16)]


def test_a_global_setting_of_a_private_connection_stays_in_it() -> None:
    con = private_connect()
    try:
        con.sql("SET disabled_optimizers = 'build_side_probe_side'")
        shared = connect()
        try:
            assert shared.sql("SELECT current_setting('disabled_optimizers')").fetchall() == [("",)]
        finally:
            shared.close()
    finally:
        con.close()
