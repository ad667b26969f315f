"""Synthetic demo data: a patient cohort whose distribution differs from site to site.

Everything is drawn with vectorised NumPy and built with Arrow compute, so a million rows take a
fraction of a second and ten million are practical for benchmarks. The same (rows, site, seed) always
gives the same table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from custos.core.errors import InvalidInput

REGIONS = ["central", "east", "north", "south", "west"]
DIAGNOSES = ["asthma", "copd", "diabetes", "hypertension", "none", "rare-disorder"]
_DIAGNOSIS_SHARES = np.array([0.08, 0.045, 0.12, 0.20, 0.55, 0.005])
_POSTCODE_AREAS = [
    "AB", "BA", "BD", "BH", "BN", "BS", "CB", "CF", "CT", "DE", "DN", "EX", "GL", "HU", "IP",
    "LE", "LN", "LS", "ME", "NE", "NG", "NR", "OX", "PE", "PL", "PO", "RG", "SO", "TQ", "YO",
]  # fmt: skip
_UNIT_LETTERS = list("ABDEFGHJLNPQRSTUWXYZ")


def synthetic_patients(rows: int, *, site: int, seed: int = 0) -> pa.Table:
    """`rows` synthetic patients of site number `site` (0, 1, 2, ...).

    Columns: patient_id (unique, "a-000123" for site 0, "b-..." for site 1), age (int64, 18..95),
    sex ("F"/"M"), bmi, systolic_bp (float64), smoker ("yes"/"no"), region (5 values), diagnosis
    (6 values, one rare) and postcode (many distinct values). Sites differ in age, BMI, smoking and
    the mix of regions and diagnoses; blood pressure rises with age, BMI, smoking and male sex.
    """
    if rows < 0:
        raise InvalidInput(f"rows must be 0 or more, not {rows}")
    if site < 0:
        raise InvalidInput(f"site must be 0 or more, not {site}")
    rng = np.random.default_rng([seed, site])
    age = np.clip(np.rint(rng.normal(48 + 5 * site, 16, rows)), 18, 95).astype(np.int64)
    male = rng.random(rows) < 0.48 + 0.03 * (site % 3)
    smoker = rng.random(rows) < min(0.6, 0.18 + 0.06 * site)
    bmi = np.round(np.clip(rng.normal(25.5 + 0.8 * site + 0.03 * (age - 50), 4.5, rows), 14.0, 60.0), 1)
    systolic = 98 + 0.45 * age + 0.9 * (bmi - 25) + 6.0 * smoker + 3.0 * male + 2.0 * site
    systolic_bp = np.round(np.clip(systolic + rng.normal(0, 11, rows), 80.0, 230.0), 1)
    region_shares = np.roll(np.array([0.35, 0.25, 0.2, 0.12, 0.08]), site)
    diagnosis_shares = _DIAGNOSIS_SHARES * np.array([1.0, 1.0 + 0.2 * site, 1.0 + 0.1 * site, 1.0, 1.0, 1.0])
    return pa.table(
        {
            "patient_id": _patient_ids(rows, site),
            "age": pa.array(age, type=pa.int64()),
            "sex": _pick(["F", "M"], male.astype(np.int64)),
            "bmi": pa.array(bmi, type=pa.float64()),
            "systolic_bp": pa.array(systolic_bp, type=pa.float64()),
            "smoker": _pick(["no", "yes"], smoker.astype(np.int64)),
            "region": _pick(REGIONS, _choose(rng, region_shares, rows)),
            "diagnosis": _pick(DIAGNOSES, _choose(rng, diagnosis_shares, rows)),
            "postcode": _postcodes(rng, rows),
        }
    )


def write_dataset(table: pa.Table, path: Path) -> None:
    """Write `table` as Parquet or CSV, chosen by the suffix of `path`."""
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise InvalidInput(f"file {path.name} has an unsupported type; use a .csv or .parquet file")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        pq.write_table(table, path)
    else:
        pa_csv.write_csv(table, path)


def _choose(rng: np.random.Generator, shares: np.ndarray, rows: int) -> np.ndarray:
    edges = np.cumsum(shares / shares.sum())
    return np.minimum(np.searchsorted(edges, rng.random(rows), side="right"), len(shares) - 1)


def _pick(values: list[str], indices: np.ndarray) -> pa.Array:
    return pa.array(values, type=pa.string()).take(pa.array(indices))


def _patient_ids(rows: int, site: int) -> pa.Array:
    prefix = chr(ord("a") + site) if site < 26 else f"s{site}"
    width = max(6, len(str(max(rows - 1, 0))))
    return _fixed_width([_text(f"{prefix}-", rows), _digits(np.arange(rows, dtype=np.int64), width)])


def _postcodes(rng: np.random.Generator, rows: int) -> pa.Array:
    letters = np.frombuffer("".join(_UNIT_LETTERS).encode(), dtype=np.uint8)
    areas = np.frombuffer("".join(_POSTCODE_AREAS).encode(), dtype=np.uint8).reshape(-1, 2)
    return _fixed_width(
        [
            areas[rng.integers(0, len(areas), rows)],
            _digits(rng.integers(10, 100, rows), 2),
            _text(" ", rows),
            _digits(rng.integers(0, 10, rows), 1),
            letters[rng.integers(0, len(letters), (rows, 2))],
        ]
    )


def _text(value: str, rows: int) -> np.ndarray:
    return np.broadcast_to(np.frombuffer(value.encode(), dtype=np.uint8), (rows, len(value)))


def _digits(numbers: np.ndarray, width: int) -> np.ndarray:
    """Non-negative `numbers` as zero-padded ASCII digits, `width` per row."""
    out = np.empty((len(numbers), width), dtype=np.uint8)
    # 32-bit division is several times faster than 64-bit, and ten million ids fit easily.
    rest = numbers.astype(np.uint32 if numbers.size == 0 or numbers.max() < 2**32 else np.uint64)
    for position in range(width - 1, -1, -1):
        rest, digit = np.divmod(rest, rest.dtype.type(10))
        out[:, position] = digit
    out += ord("0")
    return out


def _fixed_width(parts: list[np.ndarray]) -> pa.Array:
    """A string array from rows of ASCII bytes, every row the same width: no Python per row."""
    chars = np.ascontiguousarray(np.hstack(parts))
    rows, width = chars.shape
    offsets = np.arange(rows + 1, dtype=np.int64) * width
    return pa.Array.from_buffers(
        pa.large_string(), rows, [None, pa.py_buffer(offsets), pa.py_buffer(chars)]
    ).cast(pa.string())
