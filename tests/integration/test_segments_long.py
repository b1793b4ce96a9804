"""Long recordings end to end: generated calls made of labelled clips and silences with known boundaries.

A model is trained here on 1.5 s and 3 s synthetic clips (16 kHz and 8 kHz copies, actors 17-18,
repetition 1); the recordings use repetition-2 clips of the same actors (new random draws of the same
prosody), so a window's emotion is recovered only if windowing, resampling, features, the voice gate and the
rollup all line up with the clip under it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pytest
import soundfile as sf

from aei_batch.records import COL, EMOTIONS, PROB_COLUMNS, SEG
from aei_batch.scoring.windows import SegmentConfig
from aei_batch.synth import synth_clip

CLIP_S = 3.0
GAP_S = 4.5  # a multiple of the 1.5 s hop: each clip lines up with exactly one window


@pytest.fixture(scope="module")
def seg_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from aei_batch.synth import make_corpus
    from aei_batch.training.train import TrainOptions, run_train

    root = tmp_path_factory.mktemp("segcorpus")
    for sr in (16_000, 8_000):  # wideband and telephone copies
        for seconds in (CLIP_S / 2, CLIP_S):  # whole windows, and the half windows at a clip's edges
            make_corpus(root / f"{sr}-{seconds}", actors=[17, 18], statements=(1, 2), seconds=seconds, sr=sr)
    model_dir = tmp_path_factory.mktemp("segmodel")
    run_train(
        TrainOptions(
            data=str(root),
            model_dir=str(model_dir),
            holdout_actors=[],
            models=("svc",),
            runner="local",
            progress=False,
        )
    )
    return model_dir


def clip(emotion: str, sr: int, statement: int = 1) -> np.ndarray:
    intensity = 1 if emotion == "neutral" else 1 + (statement + 2) % 2
    return synth_clip(
        emotion, 18, intensity=intensity, statement=statement, repetition=2, sr=sr, seconds=CLIP_S
    )


def recording(emotions: list[str], sr: int) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """gap, clip, gap, clip, ..., gap; silence is faint noise (-80 dBFS). Returns samples and clip spans."""
    rng = np.random.default_rng(0)
    parts, spans, t = [], [], 0.0
    for k, emotion in enumerate(emotions):
        parts.append(rng.normal(0, 1e-4, int(GAP_S * sr)).astype(np.float32))
        t += GAP_S
        parts.append(clip(emotion, sr, statement=1 + k % 2))
        spans.append((emotion, t, t + CLIP_S))
        t += CLIP_S
    parts.append(rng.normal(0, 1e-4, int(GAP_S * sr)).astype(np.float32))
    return np.concatenate(parts), spans


def inside(start: float, end: float, spans: list[tuple[str, float, float]]) -> str | None:
    return next((e for e, a, b in spans if start >= a - 1e-6 and end <= b + 1e-6), None)


def overlap(start: float, end: float, spans: list[tuple[str, float, float]]) -> float:
    return sum(max(0.0, min(end, b) - max(start, a)) for _, a, b in spans)


def score(source: Path | str, model: Path, out: Path | str, fmt: str = "parquet", **seg: object) -> Any:
    from aei_batch.scoring.job import ScoreOptions, run_score

    return run_score(
        ScoreOptions(
            source=str(source),
            model_dir=str(model),
            output=str(out),
            runner="local",
            table_format=fmt,
            progress=False,
            segments=SegmentConfig(**seg),
        )
    )


def test_long_recording_timeline_follows_the_clips(seg_model: Path, tmp_path: Path) -> None:
    from aei_batch.io.sinks import read_predictions
    from aei_batch.io.sinks.segments import read_segments

    emotions = ["angry", "sad", "happy", "angry", "calm"]
    y, spans = recording(emotions, 16_000)
    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "call.wav", y, 16_000)
    summary = score(tmp_path / "in", seg_model, tmp_path / "out", mode="auto")
    assert summary.files == 1 and summary.errors == 0

    pred = read_predictions(str(tmp_path / "out"), "parquet").to_pylist()
    segs = read_segments(str(tmp_path / "out"), "parquet")
    assert len(pred) == 1
    row = pred[0]
    assert row[COL.status] == "ok" and row[COL.duration_s] == pytest.approx(len(y) / 16_000, abs=1e-3)
    assert row[COL.n_segments] == segs.num_rows
    assert set(segs[COL.run_id].to_pylist()) == {row[COL.run_id]}
    assert set(segs[COL.model_version].to_pylist()) == {row[COL.model_version]}
    assert segs[SEG.channel].null_count == segs.num_rows  # channels mixed to mono

    rows = segs.to_pylist()
    full = [(r, inside(r[SEG.start_s], r[SEG.end_s], spans)) for r in rows]
    full = [(r, e) for r, e in full if e is not None]
    assert len(full) == len(emotions)  # each clip lines up with one window
    assert [r[SEG.top_emotion] for r, _ in full] == [e for _, e in full]
    # Silence: every window of the file that lies in a gap was skipped by the voice gate.
    n_windows = int((len(y) / 16_000 - 3.0) / 1.5) + 1
    assert segs.num_rows < n_windows
    for r in rows:
        assert overlap(r[SEG.start_s], r[SEG.end_s], spans) >= 0.3 * CLIP_S
        assert r[SEG.speech_share] >= 0.4
        assert sum(r[c] for c in PROB_COLUMNS) == pytest.approx(1.0)

    # Rollup: speech-time shares per emotion match the clips' durations (angry holds 2 of 5 clips).
    shares = json.loads(row[COL.emotion_shares])
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-4)
    for emotion in EMOTIONS:
        expected = emotions.count(emotion) / len(emotions)
        assert shares[emotion] == pytest.approx(expected, abs=0.08), (emotion, shares)
    assert row[COL.dominant_emotion] == "angry"
    probs = [row[c] for c in PROB_COLUMNS]
    assert row[COL.predicted_emotion] == EMOTIONS[int(np.argmax(probs))]
    assert row[COL.confidence] == pytest.approx(max(probs))
    speech_time = len(emotions) * CLIP_S / (len(y) / 16_000)
    assert 0.5 * speech_time < row[COL.speech_share] <= speech_time + 0.02


def test_8k_stereo_call_gives_one_timeline_per_channel(seg_model: Path, tmp_path: Path) -> None:
    """Agent on channel 0, customer on channel 1, taking turns; Iceberg tables; a rerun replaces segments."""
    from aei_batch.io.query import QueryOptions, run_query
    from aei_batch.io.sinks import read_predictions
    from aei_batch.io.sinks.segments import read_segments

    sr = 8_000
    agent, agent_spans = recording(["calm", "happy", "calm"], sr)
    rng = np.random.default_rng(1)
    customer = rng.normal(0, 1e-4, len(agent)).astype(np.float32)
    customer_spans = []
    for k, emotion in enumerate(["angry", "sad"]):  # speaks in the agent's pauses after 1st and 2nd clip
        a = agent_spans[k][2] + 1.5
        customer[int(a * sr) : int(a * sr) + int(CLIP_S * sr)] = clip(emotion, sr, statement=2 - k % 2)
        customer_spans.append((emotion, a, a + CLIP_S))
    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "call-8k.wav", np.stack([agent, customer], axis=1), sr, subtype="PCM_16")

    out = tmp_path / "out"
    summary = score(tmp_path / "in", seg_model, out, fmt="iceberg", mode="on", per_channel=True)
    assert summary.errors == 0
    pred = read_predictions(str(out), "iceberg")
    segs = read_segments(str(out), "iceberg")
    assert pred.num_rows == 1 and pred[COL.n_segments][0].as_py() == segs.num_rows
    assert sorted(set(segs[SEG.channel].to_pylist())) == [0, 1]
    for ch, spans in ((0, agent_spans), (1, customer_spans)):
        mine = [r for r in segs.to_pylist() if r[SEG.channel] == ch]
        assert all(overlap(r[SEG.start_s], r[SEG.end_s], spans) > 0 for r in mine)  # own speech only
        full = [(r[SEG.top_emotion], inside(r[SEG.start_s], r[SEG.end_s], spans)) for r in mine]
        full = [(got, want) for got, want in full if want is not None]
        assert len(full) >= len(spans) and all(got == want for got, want in full), (ch, full)
    shares = json.loads(pred[COL.emotion_shares][0].as_py())
    assert shares["calm"] > shares["happy"] > 0 and shares["angry"] > 0 and shares["sad"] > 0

    # A rerun replaces the file's segments (no duplicates); a query engine reads the Iceberg table.
    score(tmp_path / "in", seg_model, out, fmt="iceberg", mode="on", per_channel=True)
    again = read_segments(str(out), "iceberg", latest=False)
    assert again.num_rows == segs.num_rows
    assert len(set(again[COL.run_id].to_pylist())) == 1
    joined = run_query(
        "SELECT count(*) AS n FROM predictions", QueryOptions(output=str(out), table_format="iceberg")
    )
    assert joined["n"][0].as_py() == 1


def test_segments_modes_for_a_short_clip(seg_model: Path, tmp_path: Path) -> None:
    from aei_batch.io.sinks import read_predictions
    from aei_batch.io.sinks.segments import read_segments

    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "short.wav", clip("sad", 16_000), 16_000)
    score(tmp_path / "in", seg_model, tmp_path / "on", mode="on")
    row = read_predictions(str(tmp_path / "on"), "parquet").to_pylist()[0]
    segs = read_segments(str(tmp_path / "on"), "parquet")
    assert row[COL.n_segments] == 1 and segs.num_rows == 1  # under one window: one segment, whole clip
    assert segs[SEG.start_s][0].as_py() == 0.0 and segs[SEG.end_s][0].as_py() == pytest.approx(CLIP_S)
    assert segs[SEG.top_emotion][0].as_py() == row[COL.predicted_emotion] == "sad"

    score(tmp_path / "in", seg_model, tmp_path / "auto", mode="auto")
    row = read_predictions(str(tmp_path / "auto"), "parquet").to_pylist()[0]
    assert row[COL.n_segments] is None and row[COL.predicted_emotion] == "sad"  # scored as one clip
    assert read_segments(str(tmp_path / "auto"), "parquet").num_rows == 0


def test_silent_file_is_an_error_row_naming_the_voice_gate(seg_model: Path, tmp_path: Path) -> None:
    from aei_batch.io.sinks import read_predictions

    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "hold-music-off.wav", np.zeros(16_000 * 10, np.float32), 16_000)
    summary = score(tmp_path / "in", seg_model, tmp_path / "out", mode="auto")
    row = read_predictions(str(tmp_path / "out"), "parquet").to_pylist()[0]
    assert summary.errors == 1 and row[COL.error_code] == "TOO_SHORT"
    assert "voice gate" in row[COL.error_message]
    assert pc.sum(pc.is_valid(read_predictions(str(tmp_path / "out"), "parquet")[COL.uri])).as_py() == 1


@pytest.mark.s3
def test_long_s3_file_is_spooled_and_segments_sit_beside_the_table(
    seg_model: Path, tmp_path: Path, s3_bucket: str
) -> None:
    """A 17 MB call on S3 (48 kHz, 3 min: over the 16 MB in-memory limit, so spooled); Parquet on S3."""
    import soxr

    from aei_batch.io import storage
    from aei_batch.io.sinks import read_predictions
    from aei_batch.io.sinks.segments import read_segments
    from aei_batch.scoring.windows import SPOOL_MIN_BYTES

    sr, minutes = 48_000, 3
    block, spans = recording(["angry", "sad", "happy", "calm"], 16_000)  # the model's band, stored at 48 kHz
    block = soxr.resample(block, 16_000, sr).astype(np.float32)
    block = np.concatenate([block, np.zeros(60 * sr - len(block), np.float32)])
    local = tmp_path / "long.wav"
    with sf.SoundFile(local, "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        for _ in range(minutes):
            f.write(block)
    assert local.stat().st_size > SPOOL_MIN_BYTES
    client = storage.s3_client()
    client.upload_file(str(local), s3_bucket, "calls/long.wav")

    table = f"s3://{s3_bucket}/tables"
    summary = score(f"s3://{s3_bucket}/calls/", seg_model, table, mode="auto")
    assert summary.errors == 0
    pred = read_predictions(table, "parquet").to_pylist()
    segs = read_segments(table, "parquet")
    assert len(pred) == 1 and pred[0][COL.uri] == f"s3://{s3_bucket}/calls/long.wav"
    assert pred[0][COL.n_segments] == segs.num_rows and segs.num_rows >= minutes * len(spans)
    assert pred[0][COL.duration_s] == pytest.approx(60.0 * minutes, abs=0.01)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket, Prefix="tables/")["Contents"]]
    run = pred[0][COL.run_id]
    assert any(k.startswith("tables/segments/run_date=") and k.endswith(f"part-{run}.parquet") for k in keys)
    # Every minute repeats the same four utterances: the windows fully inside them agree minute after minute.
    for minute in range(minutes):
        for emotion, a, _ in spans:
            hit = [r for r in segs.to_pylist() if r[SEG.start_s] == pytest.approx(minute * 60 + a)]
            assert hit and hit[0][SEG.top_emotion] == emotion, (minute, emotion)
