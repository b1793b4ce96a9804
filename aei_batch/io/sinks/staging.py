"""The staging file of a run: rows streamed to local Parquet in row groups of a useful size.

The driver receives rows in small batches (one per worker batch, 16 files by default). Written as they
come, each would become a row group of 16 rows: 1,250 row groups for 20,000 files, whose metadata made
reading the staging file back at commit time cost about 450 MB of driver memory (bench/bench_scale.py,
docs/PERFORMANCE.md). Batches are buffered here and written `ROW_GROUP_ROWS` rows at a time instead
(about 2 MB of rows held at most).
"""

from __future__ import annotations

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
