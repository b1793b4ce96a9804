"""An hour-long call scores with bounded memory: streaming decode + windows, measured in a child process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from aei_batch.synth import synth_clip

SR = 8_000
_SCORE = """
import json, resource, sys
from aei_batch.scoring.job import ScoreOptions, run_score
from aei_batch.scoring.windows import SegmentConfig
from aei_batch.io.sinks import read_predictions
src, model, out = sys.argv[1:4]
s = run_score(ScoreOptions(source=src, model_dir=model, output=out, runner="local", table_format="parquet",
                           progress=False, decode_timeout_s=0, max_duration_s=7200.0,
                           segments=SegmentConfig(mode="auto")))
row = read_predictions(out, "parquet").to_pylist()[0]
print(json.dumps({"errors": s.errors, "n_segments": row["n_segments"], "duration_s": row["duration_s"],
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def write_call(path: Path, minutes: int) -> None:
    """`minutes` one-minute blocks (four 3 s utterances, silence between), written block by block."""
    rng = np.random.default_rng(0)
    block = rng.normal(0, 1e-4, 60 * SR).astype(np.float32)
    for k, emotion in enumerate(["angry", "sad", "happy", "calm"]):
        at = int((4.5 + 7.5 * k) * SR)
        block[at : at + 3 * SR] = synth_clip(emotion, 18, sr=SR, seconds=3.0)
    with sf.SoundFile(path, "w", samplerate=SR, channels=1, subtype="PCM_16") as f:
        for _ in range(minutes):
            f.write(block)


def peak_rss_mb(src: Path, model: Path, out: Path) -> tuple[float, dict]:
    res = subprocess.run(
        [sys.executable, "-c", _SCORE, str(src), str(model), str(out)],
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    info = json.loads(res.stdout.strip().splitlines()[-1])
    return info["maxrss_kb"] / 1024, info


@pytest.mark.slow
def test_an_hour_long_call_scores_with_bounded_memory(trained_model: Path, tmp_path: Path) -> None:
    (tmp_path / "short").mkdir()
    (tmp_path / "hour").mkdir()
    write_call(tmp_path / "short" / "call.wav", 1)
    write_call(tmp_path / "hour" / "call.wav", 60)
    assert (tmp_path / "hour" / "call.wav").stat().st_size > 57_000_000

    base_mb, base = peak_rss_mb(tmp_path / "short", trained_model, tmp_path / "t-short")
    hour_mb, hour = peak_rss_mb(tmp_path / "hour", trained_model, tmp_path / "t-hour")
    print(f"peak RSS: 1-minute call {base_mb:.0f} MB, 60-minute call {hour_mb:.0f} MB")
    assert base["errors"] == 0 and hour["errors"] == 0
    assert hour["duration_s"] == pytest.approx(3600.0, abs=0.01)
    assert 60 * 12 <= hour["n_segments"] <= 60 * 20  # ~4 utterances x 3 windows a minute; silence skipped
    assert hour_mb - base_mb < 600, (base_mb, hour_mb)
