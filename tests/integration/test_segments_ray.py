"""Segment rows cross Ray Data beside their file's row: Ray and the local runner give the same tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import soundfile as sf

from aei_batch.records import COL, SEG
from aei_batch.scoring.windows import SegmentConfig
from tests.integration.test_segments_long import recording

_RUN_COLUMNS = (COL.run_id, COL.run_date, COL.scored_at)


def _score(src: Path, model: Path, out: Path, runner: str) -> tuple[pa.Table, pa.Table]:
    from aei_batch.io.sinks import read_predictions
    from aei_batch.io.sinks.segments import read_segments
    from aei_batch.scoring.job import ScoreOptions, run_score

    run_score(
        ScoreOptions(
            source=str(src),
            model_dir=str(model),
            output=str(out),
            runner=runner,
            table_format="parquet",
            progress=False,
            batch_size=2,
            workers=2,
            segments=SegmentConfig(mode="auto", per_channel=True),
        )
    )
    preds = read_predictions(str(out), "parquet").sort_by(COL.uri).drop_columns(list(_RUN_COLUMNS))
    segs = read_segments(str(out), "parquet").sort_by(
        [(COL.uri, "ascending"), (SEG.channel, "ascending"), (SEG.start_s, "ascending")]
    )
    return preds, segs.drop_columns(list(_RUN_COLUMNS))


@pytest.mark.ray
def test_ray_and_local_runners_give_the_same_segments(ray_local, trained_model: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    a, _ = recording(["angry", "sad", "happy"], 16_000)
    b, _ = recording(["calm", "fearful"], 16_000)
    n = max(len(a), len(b))
    stereo = np.stack([np.pad(a, (0, n - len(a))), np.pad(b, (0, n - len(b)))], axis=1)
    sf.write(src / "call-stereo.wav", stereo, 16_000)
    sf.write(src / "call-mono.wav", a, 16_000)
    sf.write(src / "short.wav", a[: 16_000 * 2], 16_000)  # under two windows: scored as one clip

    local_p, local_s = _score(src, trained_model, tmp_path / "local", "local")
    ray_p, ray_s = _score(src, trained_model, tmp_path / "ray", "ray")
    assert local_p.num_rows == 3 and local_s.num_rows > 0
    assert set(local_s[SEG.channel].to_pylist()) == {0, 1}
    assert ray_p.equals(local_p)
    assert ray_s.equals(local_s)
