"""The speaker-adaptive driver's spill of pending rows: bounded record batches in an Arrow IPC file, read
back one at a time, rows back in order and complete, vectors converted without a Python float per value."""

import numpy as np
import pyarrow as pa

from aei_batch.records import COL
from aei_batch.scoring.job import _PendingSpill
from aei_batch.scoring.stage import FEATURES_COLUMN, GROUP_COLUMN, PENDING_SCHEMA, feature_matrix


def _batch(start: int, n: int, dim: int = 935) -> pa.Table:
    rows = []
    for i in range(start, start + n):
        row = dict.fromkeys(PENDING_SCHEMA.names)
        row[COL.uri] = f"/in/{i:06d}.wav"
        row[GROUP_COLUMN] = f"sp{i % 7}"
        row[FEATURES_COLUMN] = np.full(dim, i, dtype=np.float32)
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=PENDING_SCHEMA)


def test_spill_writes_bounded_row_groups_and_gives_every_row_back_once(monkeypatch):
    monkeypatch.setattr(_PendingSpill, "CHUNK", 100)
    n = 1_000
    with _PendingSpill() as spill:
        for start in range(0, n, 16):
            spill.write(_batch(start, min(16, n - start)))
        chunks = list(spill.chunks())
        with pa.OSFile(f"{spill._dir}/pending.arrow", "rb") as src:
            batches = pa.ipc.open_file(src).num_record_batches
        assert batches == len(chunks) <= 11  # batches gathered, not a record batch per 16-file batch
        assert all(c.num_rows <= 2 * 100 for c in chunks)  # one group at a time, never the whole spill
    uris = [u for c in chunks for u in c[COL.uri].to_pylist()]
    assert uris == [f"/in/{i:06d}.wav" for i in range(n)]
    assert spill.rows == n and sum(g.n for g in spill.stats.groups.values()) == n
    mean = spill.stats.get("sp0").mean
    assert np.allclose(mean, np.mean([i for i in range(n) if i % 7 == 0]))


def test_feature_matrix_equals_the_python_lists():
    t = _batch(0, 5, dim=4)
    X = feature_matrix(t[FEATURES_COLUMN])
    assert X.dtype == np.float32 and X.shape == (5, 4)
    np.testing.assert_array_equal(X, np.asarray(t[FEATURES_COLUMN].to_pylist(), dtype=np.float32))
    chunked = pa.chunked_array(
        [t[FEATURES_COLUMN].chunk(0).slice(0, 2), t[FEATURES_COLUMN].chunk(0).slice(2)]
    )
    np.testing.assert_array_equal(feature_matrix(chunked), X)
    assert feature_matrix(t[FEATURES_COLUMN].slice(0, 0)).shape[0] == 0
