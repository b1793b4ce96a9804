"""Segmentation pieces: streaming decode, windows with carry-over, frame levels, voice gate, rollup, hooks."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from aei_batch.decode.audio import decode_audio
from aei_batch.decode.stream import iter_audio_chunks, probe
from aei_batch.errors import ConfigError, ErrorCode, FileError
from aei_batch.records import EMOTIONS, PROB_COLUMNS, SEGMENTS_SCHEMA
from aei_batch.scoring.windows import (
    FRAME,
    FileWindows,
    FrameMeter,
    SegmentConfig,
    Window,
    Windower,
    apply_vad,
    featurise_stream,
    frame_levels_db,
    group_by_window,
    rollup,
    segment_config,
)
from tests.support import media


def _chunks(y: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    out, pos, k = [], 0, 0
    while pos < y.shape[1]:
        n = sizes[k % len(sizes)]
        out.append(y[:, pos : pos + n])
        pos, k = pos + n, k + 1
    return out


@pytest.mark.parametrize("sizes", [[1000], [7, 3000, 511], [100_000]])
def test_windower_carry_over_gives_the_same_windows_as_one_shot(sizes: list[int]) -> None:
    y = np.arange(2 * 10_000, dtype=np.float32).reshape(2, -1)
    w = Windower(win=3000, hop=1500, min_tail=600)
    got = [(s, x.copy()) for c in _chunks(y, sizes) for s, x in w.push(c)] + list(w.finish())
    starts = [s for s, _ in got]
    assert starts == [0, 1500, 3000, 4500, 6000, 7000]  # the tail (9000..10000) gets an end-aligned window
    for s, x in got:
        np.testing.assert_array_equal(x, y[:, s : s + 3000])


def test_windower_short_stream_is_one_window_and_small_tail_is_dropped() -> None:
    w = Windower(win=3000, hop=1500, min_tail=600)
    got = list(w.push(np.ones((1, 1200), np.float32))) + list(w.finish())
    assert [(s, x.shape[1]) for s, x in got] == [(0, 1200)]
    w = Windower(win=3000, hop=1500, min_tail=600)
    got = list(w.push(np.ones((1, 3300), np.float32))) + list(w.finish())
    assert [s for s, _ in got] == [0]  # 300 uncovered samples < min_tail


def test_frame_meter_matches_one_shot_levels() -> None:
    rng = np.random.default_rng(0)
    y = (rng.standard_normal((2, 50_000)) * np.linspace(0.001, 0.5, 50_000)).astype(np.float32)
    meter = FrameMeter(2)
    for c in _chunks(y, [777, 4096, 13]):
        meter.push(c)
    np.testing.assert_allclose(meter.levels, frame_levels_db(y), atol=1e-4)
    assert meter.levels.shape == (2, 50_000 // FRAME)
    full = 20 * np.log10(np.sqrt((y[0, :FRAME].astype(np.float64) ** 2).mean()))
    assert meter.levels[0, 0] == pytest.approx(full, abs=1e-3)


def test_rollup_weights_windows_by_speech_time() -> None:
    p = np.zeros((3, 8))
    p[0, EMOTIONS.index("angry")] = 1.0
    p[1, EMOTIONS.index("angry")] = 0.6
    p[1, EMOTIONS.index("sad")] = 0.4
    p[2, EMOTIONS.index("sad")] = 1.0
    r = rollup(p, np.array([3.0, 1.0, 2.0]))
    assert r.proba[EMOTIONS.index("angry")] == pytest.approx((3 + 0.6) / 6)
    assert r.proba.sum() == pytest.approx(1.0)
    assert r.shares["angry"] == pytest.approx(4 / 6) and r.shares["sad"] == pytest.approx(2 / 6)
    assert r.dominant == "angry" and r.n_segments == 3
    assert json.loads(r.shares_json())["sad"] == pytest.approx(1 / 3, abs=1e-6)
    with pytest.raises(ValueError):
        rollup(np.zeros((2, 7)), np.ones(2))


def test_vad_uses_each_channels_own_level() -> None:
    sr = 22_050
    levels = np.full((2, 400), -90.0, dtype=np.float32)
    levels[0, 0:100] = -12.0  # channel 0 talks early, loudly
    levels[1, 200:300] = -40.0  # channel 1 talks later, quietly (still speech relative to itself)
    win = 100 * FRAME
    windows = [Window(ch, k * win, (k + 1) * win, np.zeros(3)) for ch in (0, 1) for k in range(4)]
    fw = FileWindows(windows, levels, 400 * FRAME, sr)
    kept = apply_vad(fw, SegmentConfig(mode="on"))
    assert {(w.channel, w.start // win) for w in kept} == {(0, 0), (1, 2)}
    assert all(w.speech_share == pytest.approx(1.0) for w in kept)
    assert fw.channel_speech == [pytest.approx(0.25), pytest.approx(0.25)]


def test_silent_windows_are_not_featurised() -> None:
    sr = 22_050
    y = np.zeros((1, 12 * sr), np.float32)
    y[0, 3 * sr : 6 * sr] = media.sine(300, 3.0, sr, amp=0.3)
    calls: list[int] = []

    def extract(x: np.ndarray, rate: int) -> np.ndarray:
        calls.append(len(x))
        return np.ones(4, np.float32)

    # context_s=0: each window on its own voiced span (the context is tested below)
    fw = featurise_stream(_chunks(y, [sr]), extract, sr, SegmentConfig(mode="on", chunk_s=3.0, context_s=0))
    assert [w.start / sr for w in fw.windows] == [0, 1.5, 3, 4.5, 6, 7.5, 9]
    featurised = [w.start / sr for w in fw.windows if w.vec is not None]
    # Windows touching the tone are featurised (the 6.0 s one shares a 23 ms frame with its end);
    # windows of pure silence cost no features.
    assert featurised == [1.5, 3, 4.5, 6.0]
    assert calls[1] == 3 * sr  # the window fully inside the tone is featurised whole
    assert calls[0] < 3 * sr  # trimmed to its voiced part
    kept = apply_vad(fw, SegmentConfig(mode="on"))
    assert [w.start / sr for w in kept] == [1.5, 3, 4.5]


def _utterances(sr: int) -> np.ndarray:
    """12 s: an utterance of two 'words' (2.0-3.2 s and 3.5-4.6 s, a 0.3 s pause), another at 9-10 s."""
    y = np.zeros((1, 12 * sr), np.float32)
    for a, b in ((2.0, 3.2), (3.5, 4.6), (9.0, 10.0)):
        y[0, int(a * sr) : int(b * sr)] = media.sine(220, b - a, sr, amp=0.3)[: int(b * sr) - int(a * sr)]
    return y


@pytest.mark.parametrize("sizes", [[22_050], [7, 50_000, 511], [10**6]])
def test_a_window_is_scored_on_the_whole_stretch_of_speech_under_it(sizes: list[int]) -> None:
    sr = 22_050
    y = _utterances(sr)
    spans: dict[float, float] = {}

    def extract(x: np.ndarray, rate: int) -> np.ndarray:
        return np.array([len(x) / rate], np.float32)

    fw = featurise_stream(_chunks(y, sizes), extract, sr, SegmentConfig(mode="on"))
    spans = {w.start / sr: float(w.vec[0]) for w in fw.windows if w.vec is not None}
    # the windows at 0, 1.5 and 3.0 s each hold part of the first utterance: each is featurised on all of it
    # (2.0-4.6 s: the 0.3 s pause between its words is under join_gap_s), not on its own part
    for start in (1.5, 3.0):
        assert spans[start] == pytest.approx(2.6, abs=0.05)
    assert spans[0.0] == pytest.approx(2.5, abs=0.05)  # 2.0-4.5 s: its context ends 1.5 s after it
    # the second utterance is 4.4 s later: the windows over it see it alone
    assert spans[7.5] == pytest.approx(1.0, abs=0.05)
    assert spans[9.0] == pytest.approx(1.0, abs=0.05)
    # with no context, each window keeps its own voiced span (before 2026-11-30)
    own = featurise_stream(_chunks(y, sizes), extract, sr, SegmentConfig(mode="on", context_s=0))
    spans0 = {w.start / sr: float(w.vec[0]) for w in own.windows if w.vec is not None}
    assert spans0[0.0] == pytest.approx(1.0, abs=0.05)  # 2.0-3.0 s
    assert spans0[3.0] == pytest.approx(1.6, abs=0.05)  # 3.0-4.6 s


def test_the_context_is_bounded_and_pauses_split_stretches() -> None:
    sr = 22_050
    y = np.zeros((1, 20 * sr), np.float32)
    y[0, 2 * sr : 14 * sr] = media.sine(220, 12.0, sr, amp=0.3)  # 12 s of continuous speech
    got: list[float] = []

    def extract(x: np.ndarray, rate: int) -> np.ndarray:
        got.append(len(x) / rate)
        return np.zeros(2, np.float32)

    fw = featurise_stream(_chunks(y, [sr]), extract, sr, SegmentConfig(mode="on", context_s=1.0))
    assert max(got) == pytest.approx(3.0, abs=0.01)  # a stretch longer than the window is cut to its length
    assert len(got) == len([w for w in fw.windows if w.vec is not None])
    # an utterance longer than the window but ending just after it: the window slides to cover its part
    y = np.zeros((1, 12 * sr), np.float32)
    y[0, int(2.5 * sr) : int(6.5 * sr)] = media.sine(220, 4.0, sr, amp=0.3)  # 4 s, from 2.5 s

    def where(x: np.ndarray, rate: int) -> np.ndarray:
        return np.array([len(x) / rate, float(np.abs(x).sum())], np.float32)

    fw = featurise_stream(_chunks(y, [sr]), where, sr, SegmentConfig(mode="on", context_s=3.0))
    by = {w.start / sr: w.vec for w in fw.windows if w.vec is not None}
    assert by[0.0][0] == pytest.approx(3.0, abs=0.01)  # 0-3 s holds 0.5 s of it: 3 s of the utterance
    assert by[0.0][1] == pytest.approx(
        by[1.5][1], rel=0.05
    )  # all speech, no pause (like the window inside it)
    # a pause longer than join_gap_s splits the stretch: the window over both keeps the larger part
    y = _utterances(sr)
    got.clear()
    featurise_stream(_chunks(y, [sr]), extract, sr, SegmentConfig(mode="on", join_gap_s=0.2))
    assert got[0] == pytest.approx(1.2, abs=0.05)  # the window at 0 s: the first word only (2.0-3.2 s)
    with pytest.raises(ConfigError, match="context-s"):
        SegmentConfig(context_s=-1)
    with pytest.raises(ConfigError, match="join_gap_s"):
        SegmentConfig(join_gap_s=0)


def test_stream_decode_equals_whole_file_decode() -> None:
    y = media.noise(7.3, 8000, seed=1) * np.hanning(int(7.3 * 8000)).astype(np.float32)
    data = media.wav_bytes(y, 8000)
    whole = decode_audio(data, "call.wav").y
    for chunk_s in (0.5, 3.0, 60.0):
        streamed = np.concatenate(list(iter_audio_chunks(data, "call.wav", chunk_s=chunk_s)), axis=1)[0]
        assert streamed.shape == whole.shape
        np.testing.assert_allclose(streamed, whole, atol=1e-6)
    assert probe(data, "call.wav").duration_s == pytest.approx(7.3)


def test_stream_decode_per_channel_and_pyav(tmp_path) -> None:
    stereo = np.stack([media.sine(300, 4.0, 8000), media.sine(500, 4.0, 8000) * 0.1], axis=1)
    path = media.write_audio(tmp_path / "call.m4a", stereo, 8000)
    chunks = list(iter_audio_chunks(str(path), "call.m4a", chunk_s=1.0, per_channel=True))
    y = np.concatenate(chunks, axis=1)
    assert y.shape[0] == 2 and abs(y.shape[1] / 22_050 - 4.0) < 0.1
    assert np.sqrt((y[0] ** 2).mean()) > 5 * np.sqrt((y[1] ** 2).mean())
    facts = probe(str(path), "call.m4a")
    assert facts is not None and facts.channels == 2 and facts.source_sr == 8000


@pytest.mark.parametrize(
    ("data", "name", "code"),
    [
        (b"", "x.wav", ErrorCode.EMPTY_FILE),
        (media.random_bytes(), "x.wav", ErrorCode.DECODE_FAILED),
        (media.float_wav_with_nan_inf(), "x.wav", ErrorCode.INVALID_AUDIO),
    ],
)
def test_stream_decode_bad_inputs_keep_their_codes(data: bytes, name: str, code: ErrorCode) -> None:
    with pytest.raises(FileError) as err:
        list(iter_audio_chunks(data, name))
    assert err.value.code == code


def test_stream_decode_enforces_max_duration() -> None:
    data = media.sine_wav_bytes(seconds=5.0, sr=8000)
    with pytest.raises(FileError) as err:
        list(iter_audio_chunks(data, "x.wav", chunk_s=1.0, max_duration_s=2.0))
    assert err.value.code == ErrorCode.TOO_LONG


def test_group_by_window_averages_frames_per_span() -> None:
    times = np.array([0.1, 0.5, 1.6, 2.9, 5.0])
    probs = np.eye(8)[[0, 2, 2, 4, 7]]
    out = group_by_window(times, probs, [(0.0, 1.0), (1.5, 3.0), (3.0, 4.5)])
    np.testing.assert_allclose(out[0], (np.eye(8)[0] + np.eye(8)[2]) / 2)
    np.testing.assert_allclose(out[1], (np.eye(8)[2] + np.eye(8)[4]) / 2)
    assert np.isnan(out[2]).all()


def test_segment_config_validates_and_merges_cli_over_config() -> None:
    with pytest.raises(ConfigError, match="--segments"):
        SegmentConfig(mode="sometimes")
    with pytest.raises(ConfigError, match="--hop-s"):
        SegmentConfig(window_s=3.0, hop_s=4.0)
    with pytest.raises(ConfigError, match="--min-speech-share"):
        SegmentConfig(min_speech_share=1.5)
    cfg = segment_config(
        {"segments": "on", "window_s": 4.0, "hop_s": 2.0}, mode=None, hop_s=1.0, per_channel=True
    )
    assert (cfg.mode, cfg.window_s, cfg.hop_s, cfg.per_channel) == ("on", 4.0, 1.0, True)
    assert segment_config({}).mode == "auto" and SegmentConfig().auto_threshold_s == 6.0
    cfg = segment_config({"join_gap_s": 0.5, "context_s": 3.0}, context_s=0.0)
    assert (cfg.join_gap_s, cfg.context_s) == (0.5, 0.0)


def test_router_sends_each_typed_output_to_its_sink_and_commits_siblings_first(tmp_path) -> None:
    """A batch's predictions, segments and frames are separate tables (no hidden columns); the router writes
    each to its own sink, tells the segments sink which files were scored, and publishes siblings first."""
    import datetime as dt

    from aei_batch.io.sinks.frames import FramesSink, read_frames
    from aei_batch.io.sinks.parquet import ParquetSink, read_table
    from aei_batch.io.sinks.router import OutputRouter
    from aei_batch.io.sinks.segments import ParquetSegmentsSink, read_segments
    from aei_batch.records import FRAMES_SCHEMA
    from aei_batch.scoring.rows import RunContext, base_row, fill_prediction, rows_to_table
    from aei_batch.scoring.stage import StageOutput

    ctx = RunContext.new("m")
    rows = [base_row({"uri": f"/in/{n}.wav", "size": 1, "etag": "e"}, ctx) for n in ("a", "b")]
    for r in rows:
        fill_prediction(r, np.full(8, 0.125), "audio")
    when = {"run_id": ctx.run_id, "run_date": ctx.run_date, "scored_at": ctx.scored_at}
    seg = {**dict.fromkeys(SEGMENTS_SCHEMA.names), **{c: 0.125 for c in PROB_COLUMNS}, **when}
    segs = [dict(seg, uri="/in/a.wav", segment_index=k, start_s=1.5 * k, end_s=1.5 * k + 3) for k in range(2)]
    frame = {
        **dict.fromkeys(FRAMES_SCHEMA.names),
        **when,
        "uri": "/in/b.wav",
        "frame_index": 0,
        "time_s": 0.0,
        "face_found": False,
    }
    out = StageOutput(
        predictions=rows_to_table(rows),
        segments=pa.Table.from_pylist(segs, schema=SEGMENTS_SCHEMA),
        frames=pa.Table.from_pylist([frame], schema=FRAMES_SCHEMA),
    )
    assert out.num_files == 2 and "segments" not in out.predictions.column_names
    day = ctx.run_date.isoformat()
    router = OutputRouter(
        ParquetSink(str(tmp_path / "t"), ctx.run_id, day),
        ParquetSegmentsSink(str(tmp_path / "t"), ctx.run_id, day),
        FramesSink(str(tmp_path / "f"), ctx.run_id, day),
    )
    router.write(out)
    assert router.rows == 2 and not (tmp_path / "t").exists()  # nothing visible before the commit
    router.commit()
    assert read_table(str(tmp_path / "t")).num_rows == 2
    assert read_segments(str(tmp_path / "t"), "parquet")["start_s"].to_pylist() == [0.0, 1.5]
    assert read_frames(str(tmp_path / "f")).num_rows == 1
    assert dt.date.fromisoformat(day) == ctx.run_date


def _speechlike(sr: int, f0: float, seconds: float = 2.0) -> np.ndarray:
    """A voiced sound: 24 harmonics of f0 (amplitude 1/k), a 4 Hz syllable rhythm, a Hann envelope."""
    t = np.arange(int(seconds * sr)) / sr
    y = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 25))
    return (0.1 * y * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)) * np.hanning(len(t))).astype(np.float32)


def test_windows_are_cleaned_of_their_channels_noise_floor() -> None:
    """`denoise` (the default): a window's spectrum is cleaned of the steady noise measured on its channel's
    non-speech frames, so a call under a -65 dBFS floor is featurised closer to the same call without it;
    a recording with no noise (digital silence between the words, whose fades lie under the gate but are
    speech) is featurised exactly as without cleaning."""
    from aei_batch.features import get_feature_set

    sr = 22_050
    clean = np.zeros((1, 14 * sr), np.float32)
    for k, s in enumerate((1.0, 4.5, 8.0, 11.5)):
        clean[0, int(s * sr) : int(s * sr) + 2 * sr] = _speechlike(sr, 130.0 + 20 * k)
    floor = 10 ** (-65 / 20) * np.random.default_rng(0).standard_normal(clean.shape)
    noisy = clean + floor.astype(np.float32)
    fs = get_feature_set("voice_audio")
    assert SegmentConfig().denoise

    def windows(y: np.ndarray, denoise: bool) -> dict[int, np.ndarray]:
        cfg = SegmentConfig(mode="on", denoise=denoise)
        fw = featurise_stream(_chunks(y, [sr // 2, sr]), fs, sr, cfg)
        return {w.start: w.vec for w in fw.windows if w.vec is not None}

    ref, raw, cleaned = windows(clean, False), windows(noisy, False), windows(noisy, True)
    assert set(ref) == set(raw) == set(cleaned) and len(ref) >= 6
    # the same clean call, featurised with cleaning on: no steady floor to measure, nothing changes
    assert all(np.array_equal(v, ref[k]) for k, v in windows(clean, True).items())
    for name in ("centroid_mean", "bandwidth_mean", "flatness_mean"):
        i = fs.names.index(name)
        for k in ref:
            noise_shift = abs(float(raw[k][i] - ref[k][i]))
            assert noise_shift > 0, name  # the floor moves the spectral shape...
            left = abs(float(cleaned[k][i] - ref[k][i]))
            assert left < 0.7 * noise_shift, (name, k / sr)  # ...and cleaning undoes most of it
    # a function that takes no noise spectrum (a plain extractor) is called as before
    calls: list[int] = []

    def plain(x: np.ndarray, rate: int) -> np.ndarray:
        calls.append(len(x))
        return np.zeros(3, np.float32)

    featurise_stream(_chunks(noisy, [sr]), plain, sr, SegmentConfig(mode="on"))
    assert len(calls) == len(ref)


def test_noise_spectrum_estimate_and_subtraction() -> None:
    from aei_batch.features import get_feature_set
    from aei_batch.features.rich import MIN_NOISE_FRAMES, RICH_PARAMS, SPECTRAL_FLOOR, subtract_noise

    sr, n_fft, hop = RICH_PARAMS["sr"], RICH_PARAMS["n_fft"], RICH_PARAMS["hop_length"]
    fs = get_feature_set("rich_audio")
    rng = np.random.default_rng(3)
    white = (0.01 * rng.standard_normal(sr)).astype(np.float32)
    quiet = fs.noise_profile([white[: sr // 2], white[sr // 2 :]], sr)
    assert quiet is not None and quiet.shape == (n_fft // 2 + 1,)
    # white noise: a flat spectrum (away from DC and Nyquist), at the level of its frames' power
    assert np.std(np.log10(quiet[10:-10])) < 0.1
    short = white[: n_fft + (MIN_NOISE_FRAMES - 2) * hop]  # one frame too few
    assert fs.noise_profile([short], sr) is None and fs.noise_profile([white[: n_fft - 1]], sr) is None
    power = np.array([[4.0, 1.0, 0.5]], np.float32)
    got = subtract_noise(power, np.array([1.0, 1.0, 1.0]))
    np.testing.assert_allclose(got, [[3.0, SPECTRAL_FLOOR * 1.0, SPECTRAL_FLOOR * 0.5]])
    # without a noise spectrum the features are the set's own (the hash-pinned values); a set that takes
    # none refuses one instead of ignoring it
    tone = 0.1 * np.sin(2 * np.pi * 200 * np.arange(sr) / sr)
    y = (tone + 0.001 * rng.standard_normal(sr)).astype(np.float32)
    np.testing.assert_array_equal(fs.extract(y, sr), fs.extract(y, sr, noise=None))
    assert not np.array_equal(fs.extract(y, sr), fs.extract(y, sr, noise=quiet))
    seed = get_feature_set("seed_mfcc157")
    assert seed.noise_profile([white], sr) is None
    with pytest.raises(ValueError, match="takes no noise spectrum"):
        seed.extract(y, sr, noise=quiet)
