"""A simulated world written out as the input files tiercast reads, with its ground truth beside them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tiercast.simulation.truth import ground_truth
from tiercast.simulation.world import World

_FILE_FORMATS = ("csv", "parquet")


def _to_arrow(frame: pd.DataFrame, file_format: str) -> pa.Table:
    """Arrow table; for CSV, times are written to the second and ``signup_date`` as a date."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if file_format == "parquet":
        return table
    fields = [
        field.with_type(pa.date32() if field.name == "signup_date" else pa.timestamp("s"))
        if pa.types.is_timestamp(field.type) else field
        for field in table.schema
    ]
    return table.cast(pa.schema(fields))


def write_world(world: World, out_dir: Path, cutoff: pd.Timestamp, horizon_days: int,
                file_format: str = "csv", transactions: pd.DataFrame | None = None) -> dict[str, Path]:
    """Write transactions, customers, interactions and ground truth (at the cutoff) as csv or parquet.

    ``transactions`` replaces the world's own rows in the transactions file: its invoice lines
    (:func:`tiercast.simulation.line_items.line_items`), which keep every amount and date, so the same
    ground truth holds. The ground truth is computed before anything is written, so a bad window writes
    nothing. Returns ``{name: path}``.
    """
    if file_format not in _FILE_FORMATS:
        raise ValueError(f"file_format must be one of {_FILE_FORMATS}, got {file_format!r}")
    frames = {
        "transactions": world.transactions if transactions is None else transactions,
        "customers": world.customers,
        "interactions": world.interactions,
        "ground_truth": ground_truth(world, cutoff, horizon_days),
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, frame in frames.items():
        path = out_dir / f"{name}.{file_format}"
        table = _to_arrow(frame, file_format)
        if file_format == "csv":
            pacsv.write_csv(table, path)
        else:
            pq.write_table(table, path)
        paths[name] = path
    return paths
