"""Parquet copies of the released records and the pairs, with explicit column types (pyarrow)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sparring.errors import ConfigError


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ConfigError("writing Parquet needs pyarrow: pip install 'sparring[release]'") from None
    return pyarrow


def write_records_parquet(records: Sequence[dict[str, Any]], path: Path) -> None:
    """The released keys as columns; null where the JSON has null; tags as a list of strings."""
    pa = _pyarrow()
    schema = pa.schema([
        ("transcript", pa.string()),
        ("min_harmlessness_score_transcript", pa.float64()),
        ("num_params", pa.string()),
        ("model_type", pa.string()),
        ("rating", pa.float64()),
        ("task_description", pa.string()),
        ("task_descripton_harmlessness_score", pa.float64()),  # the published spelling
        ("red_team_member_id", pa.int64()),
        ("is_upworker", pa.bool_()),
        ("tags", pa.list_(pa.string())),
    ])
    columns = {name: [record[name] for record in records] for name in schema.names}
    table = pa.Table.from_pydict(columns, schema=schema)
    pa.parquet.write_table(table, path, compression="zstd")


def write_pairs_parquet(pairs: Sequence[tuple[str, str]], path: Path) -> None:
    pa = _pyarrow()
    schema = pa.schema([("chosen", pa.string()), ("rejected", pa.string())])
    table = pa.Table.from_pydict({"chosen": [c for c, _ in pairs], "rejected": [r for _, r in pairs]}, schema=schema)
    pa.parquet.write_table(table, path, compression="zstd")
