"""The staging file of a run: rows streamed to local Parquet in row groups of a useful size.

The driver receives rows in small batches (one per worker batch, 16 files by default). Written as they
come, each would become a row group of 16 rows: 1,250 row groups for 20,000 files, whose metadata made
reading the staging file back at commit time cost about 450 MB of driver memory (bench/bench_scale.py,
docs/PERFORMANCE.md). Batches are buffered here and written `ROW_GROUP_ROWS` rows at a time instead
(about 2 MB of rows held at most). At commit time the sinks read the staging back the same way,
a chunk at a time (`staged_chunks`), and plan with the key columns only (`staged_columns`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROW_GROUP_ROWS = 4096


class BufferedParquetWriter:
    """`pq.ParquetWriter` with the same `write_table` / `close`, writing whole row groups of rows."""

    def __init__(self, path: str | Path, schema: pa.Schema, *, rows_per_group: int = ROW_GROUP_ROWS) -> None:
        self._writer = pq.ParquetWriter(path, schema, compression="zstd")
        self._schema = schema
        self._rows_per_group = rows_per_group
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def write_table(self, table: pa.Table) -> None:
        self._pending.append(table)
        self._pending_rows += table.num_rows
        if self._pending_rows >= self._rows_per_group:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            rows = pa.concat_tables(self._pending).combine_chunks()
            self._writer.write_table(rows, row_group_size=max(self._rows_per_group, rows.num_rows))
        self._pending, self._pending_rows = [], 0

    def close(self) -> None:
        self._flush()
        self._writer.close()


def staged_chunks(
    paths: Iterable[Path], schema: pa.Schema, *, min_rows: int = ROW_GROUP_ROWS
) -> Iterator[pa.Table]:
    """The rows of local staging files in chunks of at least `min_rows` rows (the last may be smaller),
    read a row group at a time and cast to `schema`: each chunk becomes a data file of the commit."""
    held: list[pa.Table] = []
    n = 0
    for path in paths:
        if not path.exists():
            continue
        pf = pq.ParquetFile(path, pre_buffer=False)
        for i in range(pf.num_row_groups):
            group = pf.read_row_group(i).cast(schema)
            held.append(group)
            n += group.num_rows
            if n >= min_rows:
                yield pa.concat_tables(held).combine_chunks()
                held, n = [], 0
    if held:
        yield pa.concat_tables(held).combine_chunks()


def staged_columns(paths: Iterable[Path], columns: Sequence[str], schema: pa.Schema) -> pa.Table:
    """Only `columns` of local staging files (the keys a commit plans with), as one table."""
    parts = [pq.read_table(p, columns=list(columns)) for p in paths if p.exists()]
    target = pa.schema([schema.field(c) for c in columns])
    return pa.concat_tables([t.cast(target) for t in parts]) if parts else target.empty_table()
