"""`aei-batch timeline` draws a file's emotion timeline from the segments table to a PNG."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from aei_batch.cli import app
from aei_batch.errors import ExitCode
from aei_batch.scoring.windows import SegmentConfig
from aei_batch.synth import synth_clip


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def call(sr: int = 8_000) -> np.ndarray:
    """A 24 s two-channel call: the agent talks, then the customer, then the agent, with pauses."""
    y = np.random.default_rng(0).normal(0, 1e-4, (24 * sr, 2)).astype(np.float32)
    for ch, at, emotion in ((0, 1.0, "calm"), (1, 6.0, "angry"), (1, 10.0, "angry"), (0, 16.0, "happy")):
        y[int(at * sr) : int(at * sr) + int(3.5 * sr), ch] = synth_clip(emotion, 18, sr=sr, seconds=3.5)
    return y


def score(src: Path, model: Path, out: Path, fmt: str, per_channel: bool) -> None:
    from aei_batch.scoring.job import ScoreOptions, run_score

    run_score(
        ScoreOptions(
            source=str(src),
            model_dir=str(model),
            output=str(out),
            runner="local",
            table_format=fmt,
            progress=False,
            decode_timeout_s=0,
            segments=SegmentConfig(mode="on", per_channel=per_channel),
        )
    )


@pytest.fixture(scope="module")
def tables_dir(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One call scored twice: per channel into an Iceberg table, mixed to mono into a Parquet table."""
    root = tmp_path_factory.mktemp("timeline")
    (root / "in").mkdir()
    sf.write(root / "in" / "call.wav", call(), 8_000, subtype="PCM_16")
    score(root / "in", trained_model, root / "stereo", "iceberg", per_channel=True)
    score(root / "in", trained_model, root / "mixed", "parquet", per_channel=False)
    return root


def test_timeline_png_for_a_stereo_call_and_a_mixed_one(tables_dir: Path, tmp_path: Path) -> None:
    exe = shutil.which("aei-batch")
    assert exe is not None
    stereo_png = tmp_path / "plots" / "stereo.png"
    cmd = [
        exe,
        "timeline",
        str(tables_dir / "in" / "call.wav"),
        "--table",
        str(tables_dir / "stereo"),
        "--out",
        str(stereo_png),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "--table LOCATION` is deprecated" in res.stderr and "--out is deprecated" in res.stderr
    assert str(stereo_png) in res.stdout and "segments" in res.stdout

    mixed_png = tmp_path / "plots" / "mixed.png"
    res = CliRunner().invoke(
        app,
        [
            "timeline",
            "call.wav",
            "-o",
            str(tables_dir / "mixed"),
            "--table-format",
            "parquet",
            "--png",
            str(mixed_png),
        ],
    )  # a unique path suffix finds the uri; the first call above used the old spellings (still working)
    assert res.exit_code == 0, res.output
    (w2, h2), (w1, h1) = png_size(stereo_png), png_size(mixed_png)
    assert w1 == w2 and h2 > h1 * 1.5  # one panel per channel
    assert stereo_png.stat().st_size > 20_000  # drawn, not blank


def test_timeline_of_an_unknown_file_exits_input_not_found(tables_dir: Path) -> None:
    table = str(tables_dir / "mixed")
    res = CliRunner().invoke(app, ["timeline", "other.wav", "--table", table, "--format", "parquet"])
    assert res.exit_code == ExitCode.INPUT_NOT_FOUND and "no segments" in res.output
    res = CliRunner().invoke(app, ["timeline", "call.wav", "--table", table, "--format", "csv"])
    assert res.exit_code == ExitCode.CONFIG


@pytest.mark.parametrize("n", [1, 3])
def test_draw_timeline_handles_single_and_sparse_windows(tmp_path: Path, n: int) -> None:
    import datetime as dt

    import pyarrow as pa

    from aei_batch.records import EMOTIONS, PROB_COLUMNS, SEGMENTS_SCHEMA
    from aei_batch.timeline import draw_timeline

    rows = []
    for k in range(n):
        p = np.full(8, 0.02)
        p[k] = 0.86
        rows.append(
            dict(
                zip(PROB_COLUMNS, p.tolist(), strict=True),
                uri="u",
                segment_index=k,
                start_s=10.0 * k,
                end_s=10.0 * k + 3,
                top_emotion=EMOTIONS[k],
                run_id="r",
                run_date=dt.date(2026, 1, 1),
                scored_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
            )
        )
    path = draw_timeline(
        pa.Table.from_pylist(rows, schema=SEGMENTS_SCHEMA), tmp_path / "t.png", title="t", duration_s=40.0
    )
    assert png_size(path)[0] > 0
