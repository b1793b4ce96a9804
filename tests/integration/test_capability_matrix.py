"""Every capability composes, on every runner, with the default model.

{the default model `aei-batch train` writes (speaker-adaptive ensemble), a per-file model}
x {short clips, a long mono call, a stereo call with and without --per-channel, an audio+video mp4, a
   long audio+video mp4, a video-only mp4, an mp4 without video}
x {local, pool, ray}:
one row per file, status ok for every valid file; mp4 rows carry audio and video probabilities and fuse them;
the video-only file is scored from its video; each call, and the long mp4's audio track, has windows in the
segments table (one per channel with --per-channel), the long mp4's windows' rollup fused with its faces;
every runner writes the same rows.

Before the scoring redesign, the speaker-adaptive default scored the audio+video mp4 on audio only, made the
video-only mp4 an error row and gave the calls no timeline, on every runner, silently; until the long mp4
row was added here, a long video's audio track was scored as one clip, with no timeline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from aei_batch.records import AUDIO_PROB_COLUMNS, COL, PROB_COLUMNS, SEG, VIDEO_PROB_COLUMNS
from aei_batch.scoring.windows import SegmentConfig
from aei_batch.synth import synth_clip
from tests.support.media import ravdess_name, write_video

pytestmark = [pytest.mark.slow]

RUNNERS = ("local", "pool", "ray")
AV = ravdess_name(1, 1, 3, 1, 1, 1, 21, ".mp4")  # audio-video, happy, actor 21
VO = ravdess_name(2, 1, 4, 1, 1, 1, 22, ".mp4")  # video-only, sad, actor 22
NV = ravdess_name(3, 1, 5, 1, 1, 1, 23, ".mp4")  # an mp4 container with only an audio track
LONG_AV = ravdess_name(1, 1, 6, 1, 1, 1, 24, ".mp4")  # an 8 s audio-video mp4: long enough for windows
MONO, STEREO = "call-mono-16k.wav", "call-stereo-8k.wav"
CALLS = (MONO, STEREO)


def _call(sr: int, emotions: list[str], actor: int) -> np.ndarray:
    rng = np.random.default_rng(actor)
    parts = []
    for k, e in enumerate(emotions):
        parts.append(rng.normal(0, 1e-4, int(1.5 * sr)).astype(np.float32))
        parts.append(synth_clip(e, actor, intensity=1, statement=1 + k % 2, repetition=2, sr=sr, seconds=3.0))
    parts.append(rng.normal(0, 1e-4, int(1.5 * sr)).astype(np.float32))
    return np.concatenate(parts)


@pytest.fixture(scope="module")
def inputs(synth_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("matrix")
    for actor in (21, 22):  # short clips of two held-out actors (speaker groups for the adaptive model)
        for wav in sorted((synth_corpus / f"Actor_{actor}").glob("*.wav"))[:5]:
            (root / wav.name).write_bytes(wav.read_bytes())
    emotions = ["angry", "sad", "happy", "neutral"]
    sf.write(root / MONO, _call(16_000, emotions, 23), 16_000)
    left, right = _call(8_000, emotions, 23), _call(8_000, emotions[::-1], 24)
    sf.write(root / STEREO, np.stack([left, right], axis=1), 8_000)
    write_video(root / AV, face=True, seconds=1.7)
    write_video(root / VO, face=True, audio=False, seconds=1.7)
    write_video(root / NV, video=False, seconds=1.7)
    write_video(root / LONG_AV, face=True, seconds=8.0)
    return root


@pytest.fixture(scope="module")
def default_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `aei-batch train --data DIR -m M` writes with no model options (actors 17-20; the inputs above are
    other actors' files)."""
    from aei_batch.synth import make_corpus
    from aei_batch.training.train import TrainOptions, audio_defaults, run_train

    corpus = tmp_path_factory.mktemp("default_corpus")
    make_corpus(corpus, actors=[17, 18, 19, 20], statements=(1, 2), seconds=1.5)
    model_dir = tmp_path_factory.mktemp("default_model")
    feature_set, models, adaptive = audio_defaults(str(corpus), "audio", None, None, None)
    assert adaptive, "the default model is speaker-adaptive"
    run_train(
        TrainOptions(
            data=str(corpus),
            model_dir=str(model_dir),
            holdout_actors=[],
            feature_set=feature_set,
            models=models,
            speaker_adaptive=adaptive,
            runner="local",
            progress=False,
        )
    )
    return model_dir


def _voice_logreg(tmp_path_factory: pytest.TempPathFactory, feature_set: str) -> Path:
    from aei_batch.synth import make_corpus
    from aei_batch.training.train import TrainOptions, run_train

    corpus = tmp_path_factory.mktemp("voice_corpus")
    make_corpus(corpus, actors=[17, 18], statements=(1,), seconds=1.5)
    model_dir = tmp_path_factory.mktemp("voice_per_file")
    opts = TrainOptions(
        data=str(corpus),
        model_dir=str(model_dir),
        holdout_actors=[],
        feature_set=feature_set,
        models=("logreg",),
        augment=False,
        heldout_windows=False,
        runner="local",
        progress=False,
    )
    run_train(opts)
    return model_dir


@pytest.fixture(scope="module")
def voice_per_file_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A per-file logistic regression on the default feature set (`voice_audio`, its newest version), which
    takes a noise spectrum: regularised enough that its windows' probabilities show what cleaning does."""
    return _voice_logreg(tmp_path_factory, "voice_audio")


@pytest.fixture(scope="module")
def voice_v1_per_file_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same on `voice_audio@v1`: a model trained before v2's floor-aware active frames."""
    return _voice_logreg(tmp_path_factory, "voice_audio@v1")


def _score(
    src: Path, model: Path, out: Path, runner: str, per_channel: bool = False, **segments: Any
) -> tuple[Any, dict, Any]:
    from aei_batch.io.sinks.parquet import read_table
    from aei_batch.io.sinks.segments import read_segments
    from aei_batch.scoring.job import ScoreOptions, run_score

    summary = run_score(
        ScoreOptions(
            source=str(src),
            model_dir=str(model),
            output=str(out),
            table_format="parquet",
            runner=runner,
            workers=2,
            progress=False,
            batch_size=4,
            segments=SegmentConfig(mode="auto", per_channel=per_channel, **segments),
        )
    )
    rows = {Path(r[COL.uri]).name: r for r in read_table(str(out)).to_pylist()}
    return summary, rows, read_segments(str(out), "parquet")


def _check_rows(rows: dict[str, dict], segs: Any, adaptive: bool) -> None:
    for name, r in rows.items():
        assert r[COL.status] == "ok", (name, r[COL.error_code], r[COL.error_message])
        assert sum(r[c] for c in PROB_COLUMNS) == pytest.approx(1.0)
        assert r[COL.feature_set].endswith("+speaker-z") == adaptive, (name, r[COL.feature_set])
    av = rows[AV]
    assert av[COL.modalities_used] == "audio+video"
    a = np.array([av[c] for c in AUDIO_PROB_COLUMNS])
    v = np.array([av[c] for c in VIDEO_PROB_COLUMNS])
    assert a.sum() == pytest.approx(1.0) and v.sum() == pytest.approx(1.0)
    from aei_batch.models.fusion import fuse

    w = av[COL.fusion_audio_weight]
    np.testing.assert_allclose([av[c] for c in PROB_COLUMNS], fuse(a, v, w), atol=1e-6)
    assert rows[VO][COL.modalities_used] == "video" and rows[VO][VIDEO_PROB_COLUMNS[0]] is not None
    assert rows[NV][COL.modalities_used] == "audio" and rows[NV][VIDEO_PROB_COLUMNS[0]] is None
    long_av = rows[LONG_AV]
    assert long_av[COL.modalities_used] == "audio+video" and long_av[COL.n_segments] >= 3
    assert segs.filter(pc_equal(segs, Path(LONG_AV))).num_rows == long_av[COL.n_segments]
    a = np.array([long_av[c] for c in AUDIO_PROB_COLUMNS])
    v = np.array([long_av[c] for c in VIDEO_PROB_COLUMNS])
    np.testing.assert_allclose(
        [long_av[c] for c in PROB_COLUMNS], fuse(a, v, long_av[COL.fusion_audio_weight]), atol=1e-6
    )
    assert long_av[COL.duration_s] == pytest.approx(8.0, abs=0.2)
    by_file = {n: segs.filter(pc_equal(segs, Path(n))) for n in CALLS}
    for name in CALLS:
        assert rows[name][COL.n_segments] and rows[name][COL.n_segments] >= 4, name
        assert by_file[name].num_rows == rows[name][COL.n_segments], name
    short = [n for n in rows if n.endswith(".wav") and n not in CALLS]
    assert len(short) == 10 and all(rows[n][COL.n_segments] is None for n in short)


def pc_equal(segs: Any, name: Path) -> Any:
    import pyarrow.compute as pc

    return pc.ends_with(segs[COL.uri], "/" + name.name)


def _comparable(rows: dict[str, dict]) -> dict[str, tuple]:
    return {
        n: (
            r[COL.predicted_emotion],
            r[COL.modalities_used],
            r[COL.n_segments],
            [round(r[c], 4) for c in PROB_COLUMNS],
        )
        for n, r in rows.items()
    }


@pytest.mark.parametrize("which", ["default", "per_file"])
def test_capability_matrix(
    which: str, inputs: Path, default_model: Path, trained_model: Path, ray_local: Any, tmp_path: Path
) -> None:
    model = default_model if which == "default" else trained_model
    seen: dict[str, dict[str, tuple]] = {}
    for runner in RUNNERS:
        summary, rows, segs = _score(inputs, model, tmp_path / runner, runner)
        assert summary.files == len(rows) == 16 and summary.errors == 0, (runner, summary.error_codes)
        _check_rows(rows, segs, adaptive=which == "default")
        assert (
            segs.filter(pc_equal(segs, Path(STEREO)))[SEG.channel].null_count
            == segs.filter(pc_equal(segs, Path(STEREO))).num_rows
        )  # mixed down: no channel
        seen[runner] = _comparable(rows)
    assert seen["pool"] == seen["local"] and seen["ray"] == seen["local"]


@pytest.mark.parametrize("which", ["default", "per_file"])
def test_stereo_call_per_channel_on_every_runner(
    which: str, inputs: Path, default_model: Path, trained_model: Path, ray_local: Any, tmp_path: Path
) -> None:
    model = default_model if which == "default" else trained_model
    src = tmp_path / "in"
    src.mkdir()
    (src / STEREO).write_bytes((inputs / STEREO).read_bytes())
    seen = {}
    for runner in RUNNERS:
        summary, rows, segs = _score(src, model, tmp_path / runner, runner, per_channel=True)
        assert summary.files == 1 and rows[STEREO][COL.status] == "ok", rows[STEREO][COL.error_message]
        assert set(segs[SEG.channel].to_pylist()) == {0, 1}, runner
        assert rows[STEREO][COL.n_segments] == segs.num_rows
        seen[runner] = (_comparable(rows), sorted(segs[SEG.top_emotion].to_pylist()))
    assert seen["pool"] == seen["local"] and seen["ray"] == seen["local"]


def test_window_context_and_denoise_reach_every_runner(
    inputs: Path,
    default_model: Path,
    trained_model: Path,
    voice_per_file_model: Path,
    ray_local: Any,
    tmp_path: Path,
) -> None:
    """A call's windows are featurised on the stretch of speech under them (`context_s`, docs/SEGMENTS.md) and
    cleaned of their channel's noise (`denoise`) on every runner, and `--context-s 0` (each window's own
    voiced span) and `--no-denoise` reach the workers too: each gives different windows, each the same on
    every runner. The default model is saturated on these tones (every window's probabilities are 1 and
    ~1e-75), so the context's difference is seen with the per-file seed model, and cleaning (which only
    feature sets that take a noise spectrum do: the seed's does not) with a per-file model on the default
    feature set."""
    src = tmp_path / "in"
    src.mkdir()
    (src / MONO).write_bytes((inputs / MONO).read_bytes())
    seen: dict[tuple[str, str, float, bool], np.ndarray] = {}
    default = SegmentConfig()
    cases = [
        ("per_file", trained_model, c, d)
        for c, d in ((0.0, default.denoise), (default.context_s, default.denoise), (default.context_s, False))
    ]
    cases.append(("default", default_model, 0.0, False))
    cases += [("voice", voice_per_file_model, default.context_s, d) for d in (False, True)]
    for which, model, context, denoise in cases:
        for runner in RUNNERS:
            out = tmp_path / f"{which}-{runner}-{context}-{denoise}"
            _, rows, segs = _score(src, model, out, runner, context_s=context, denoise=denoise)
            assert rows[MONO][COL.status] == "ok" and rows[MONO][COL.n_segments] == segs.num_rows >= 4
            order = np.argsort(segs[SEG.start_s].to_numpy())
            probs = np.array([segs[c].to_numpy() for c in PROB_COLUMNS]).T[order]
            seen[which, runner, context, denoise] = probs
        for runner in ("pool", "ray"):
            np.testing.assert_allclose(
                seen[which, runner, context, denoise],
                seen[which, "local", context, denoise],
                atol=1e-9,
                err_msg=runner,
            )
    own = seen["per_file", "local", 0.0, default.denoise]
    ctx = seen["per_file", "local", default.context_s, default.denoise]
    assert own.shape == ctx.shape  # the same windows pass the gate...
    assert np.abs(own - ctx).max() > 0.01  # ...but some are featurised on more of their utterance
    np.testing.assert_array_equal(ctx, seen["per_file", "local", default.context_s, False])  # no noise_fn
    raw, cleaned = (seen["voice", "local", default.context_s, d] for d in (False, True))
    assert raw.shape == cleaned.shape  # cleaning changes no window's gate...
    assert np.abs(raw - cleaned).max() > 1e-3  # ...but the spectra: the pauses hold a -80 dBFS floor


def test_the_cards_feature_set_version_reaches_every_runner(
    voice_per_file_model: Path, voice_v1_per_file_model: Path, ray_local: Any, tmp_path: Path
) -> None:
    """A model trained on `voice_audio@v1` (before v2's floor-aware active frames) is scored with v1's
    extractor on every runner, and one trained on v2 with v2's: each row names its version and holds the
    probabilities of that version's features, on a clip whose steady floor sets the two versions apart."""
    from aei_batch.decode.audio import ANALYSIS_SR, decode_audio
    from aei_batch.features.augment import noise_floor
    from aei_batch.models.loader import load_model

    src = tmp_path / "in"
    src.mkdir()
    name = ravdess_name(3, 1, 5, 1, 1, 1, 21)
    pause = np.zeros(int(0.7 * 16_000), np.float32)
    clip = synth_clip("angry", 21, sr=16_000, seconds=2.0)
    sf.write(src / name, noise_floor(np.concatenate([pause, clip, pause]), 16_000, dbfs=-50.0), 16_000)
    y = decode_audio((src / name).read_bytes(), name).y
    for model_dir, version in ((voice_v1_per_file_model, 1), (voice_per_file_model, 2)):
        model = load_model(str(model_dir))
        assert model.feature_set.id == f"voice_audio@v{version}"
        expected = model.predict_proba8(model.feature_set.extract(y, ANALYSIS_SR)[None])[0]
        for runner in RUNNERS:
            _, rows, _ = _score(src, model_dir, tmp_path / f"v{version}-{runner}", runner)
            row = rows[name]
            assert row[COL.status] == "ok" and row[COL.feature_set] == f"voice_audio@v{version}", runner
            np.testing.assert_allclose([row[c] for c in PROB_COLUMNS], expected, atol=1e-6, err_msg=runner)
    model = load_model(str(voice_per_file_model))
    other = load_model(str(voice_v1_per_file_model)).feature_set.extract(y, ANALYSIS_SR)
    gap = np.abs(model.predict_proba8(other[None])[0] - expected).max()
    assert gap > 1e-4, gap  # v1's features would have given other probabilities: the check above can fail


def test_the_window_temperature_reaches_every_runner(
    inputs: Path, default_model: Path, ray_local: Any, tmp_path: Path
) -> None:
    """The default model's windows take its window temperature (fitted by `train` on windows of generated
    calls of the training actors, docs/MODELS.md round 8) on every runner; whole files keep the file
    temperature. Before round 8 every window was scored with the whole files' temperature. The synthetic
    default is saturated (both temperatures fitted on separable tones), so a copy of it gets a window
    temperature far from the file one: its windows must then be exactly what the model gives windows."""
    import json
    import shutil

    from aei_batch.models.card import sha256_file
    from aei_batch.models.loader import load_model
    from aei_batch.models.tabular import SklearnClassifier
    from aei_batch.scoring.speaker import GlobalStats, SpeakerTransform
    from aei_batch.scoring.windows import apply_vad, featurise_file

    card = json.loads((default_model / "card.json").read_text())
    name = card["default_model"]
    params = card["models"][name]["params"]
    assert params["window_temperature"] is not None and params["window_temperature"] > 0  # the default path
    model = tmp_path / "model"
    shutil.copytree(default_model, model)
    art = model / card["models"][name]["file"]
    clf = SklearnClassifier.load(name, art)
    clf.estimator.window_temperature_ = 100 * clf.estimator.temperature_
    clf.save(art)
    card["models"][name]["sha256"] = sha256_file(art)
    (model / "card.json").write_text(json.dumps(card))

    src = tmp_path / "in"
    src.mkdir()
    (src / MONO).write_bytes((inputs / MONO).read_bytes())
    clip = next(p for p in sorted(inputs.iterdir()) if p.suffix == ".wav" and p.name not in CALLS)
    (src / clip.name).write_bytes(clip.read_bytes())
    # what the model gives this call's windows, in this process
    loaded = load_model(str(model))
    cfg = SegmentConfig(mode="auto")
    kept = apply_vad(featurise_file(str(src / MONO), MONO, loaded.feature_set.id, cfg.as_dict(), None), cfg)
    groups = ["file"] * len(kept)
    min_files = int(loaded.card.options["min_speaker_files"])
    g = GlobalStats.from_json(loaded.card.options["global_stats"])
    Z = SpeakerTransform(True, g, min_files).apply_own_groups(np.stack([w.vec for w in kept]), groups)
    adapt = loaded.adaptation_of(Z, groups, min_files)
    as_windows = loaded.predict_normalised(Z, adapt, np.ones(len(Z), dtype=bool))
    as_files = loaded.predict_normalised(Z, adapt)
    assert np.abs(as_windows - as_files).max() > 1e-3
    _, before, _ = _score(src, default_model, tmp_path / "before", "local")
    for runner in RUNNERS:
        _, rows, segs = _score(src, model, tmp_path / runner, runner)
        assert rows[MONO][COL.status] == "ok" and segs.num_rows == len(kept), runner
        order = np.argsort(segs[SEG.start_s].to_numpy())
        probs = np.array([segs[c].to_numpy() for c in PROB_COLUMNS]).T[order]
        np.testing.assert_allclose(probs, as_windows, atol=1e-6, err_msg=runner)
        # a whole file: the file temperature, as the model without its own window temperature gives it
        for c in PROB_COLUMNS:
            assert rows[clip.name][c] == pytest.approx(before[clip.name][c], abs=1e-9), (runner, c)
