"""Per-group adaptation of the class means (models/adapt.py) through `score` on every runner.

The driver finishes speaker-adaptive clips in two passes over its spill (adaptation sums, then
predictions); `evaluate` adapts each actor on all its rows at once. Both must give the same probabilities,
on the in-process runner, the pool and Ray, and they must differ from the unadapted model's (else the
scoring path would have dropped the adaptation silently).

The synthetic tones are separable without adaptation, so the blend's inner CV would choose none; the
fixture restricts its choices to one relevance factor to get a model that adapts.
"""

from pathlib import Path

import numpy as np
import pytest

from aei_batch.io.sinks.parquet import read_table
from aei_batch.records import COL, PROB_COLUMNS
from aei_batch.scoring.job import ScoreOptions, run_score
from aei_batch.scoring.windows import SegmentConfig

HELDOUT = [21, 22, 23, 24]


@pytest.fixture(scope="module")
def adapting_model(synth_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from aei_batch.models.card import load_card
    from aei_batch.training.train import TrainOptions, run_train

    model_dir = tmp_path_factory.mktemp("adapting")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("aei_batch.models.adapt.TAUS", (2.0,))
        run_train(
            TrainOptions(
                data=str(synth_corpus),
                model_dir=str(model_dir),
                holdout_actors=HELDOUT,
                feature_set="rich_audio",
                models=("blend",),
                speaker_adaptive=True,
                min_speaker_files=4,
                runner="local",
                progress=False,
            )
        )
    card = load_card(model_dir)
    assert card.models["blend"].params["adapt_tau"] == 2.0
    return model_dir


@pytest.fixture(scope="module")
def expected(synth_corpus: Path, adapting_model: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """uri -> (adapted, unadapted) probabilities, the evaluate way: each actor adapted on all its files."""
    from aei_batch.models.loader import load_model
    from aei_batch.models.stats import GlobalStats
    from aei_batch.scoring.speaker import normalise
    from aei_batch.training.cv import cached_featurise, speaker_keys
    from aei_batch.training.evaluate import model_predictor

    model = load_model(str(adapting_model))
    assert model.adapts
    data = cached_featurise(str(synth_corpus), "rich_audio", cache_dir=None, runner="local", progress=False)
    adapted = model_predictor(model, 4)(data.X, data.actors)
    g = GlobalStats.from_json(model.card.options["global_stats"])
    plain = model.predict_normalised(normalise(data.X, speaker_keys(data.actors), g, 4)[0])
    return {u: (a, p) for u, a, p in zip(data.uris, adapted, plain, strict=True)}


def _score(src: Path, model: Path, out: Path, runner: str) -> dict[str, np.ndarray]:
    summary = run_score(
        ScoreOptions(
            source=str(src),
            model_dir=str(model),
            output=str(out),
            runner=runner,
            workers=2,
            table_format="parquet",
            progress=False,
            segments=SegmentConfig(mode="off"),
        )
    )
    rows = read_table(str(out)).to_pylist()
    assert summary.files == len(rows) == 64 and summary.errors == 0
    assert all(r[COL.feature_set] == "rich_audio@v1+speaker-z" for r in rows)
    return {r[COL.uri]: np.array([r[c] for c in PROB_COLUMNS]) for r in rows}


@pytest.mark.parametrize("runner", ["local", "pool", pytest.param("ray", marks=pytest.mark.ray)])
def test_score_adapts_each_speaker_like_evaluate_on_every_runner(
    runner, request, synth_corpus, adapting_model, expected, tmp_path
):
    if runner == "ray":
        request.getfixturevalue("ray_local")
    got = _score(synth_corpus, adapting_model, tmp_path / "t", runner)
    assert set(got) == set(expected)
    moved = 0.0
    for uri, p in got.items():
        adapted, plain = expected[uri]
        np.testing.assert_allclose(p, adapted, atol=2e-5, err_msg=uri)
        moved = max(moved, float(np.abs(adapted - plain).max()))
    assert moved > 1e-3, "the adaptation changed nothing: the test would not see it dropped"


def test_a_calls_channels_are_adapted_on_their_own_windows(adapting_model, tmp_path, monkeypatch):
    """A stereo call scored window by window per channel: each channel's windows are one speaker group,
    adapted on those windows in the worker. Without the adaptation the timeline would be different."""
    import soundfile as sf

    from aei_batch.io.sinks.segments import read_segments
    from aei_batch.scoring.stage import Predictor
    from aei_batch.synth import synth_clip

    sr = 16_000
    rng = np.random.default_rng(0)
    emotions = ["angry", "sad", "happy", "neutral", "calm", "fearful", "disgust", "surprised"]
    sides = []
    for actor, order in ((23, emotions), (24, emotions[::-1])):
        parts = []
        for k, e in enumerate(order):
            parts.append(rng.normal(0, 1e-4, sr).astype(np.float32))
            parts.append(
                synth_clip(e, actor, intensity=1, statement=1 + k % 2, repetition=2, sr=sr, seconds=3.0)
            )
        sides.append(np.concatenate(parts))
    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "call.wav", np.stack(sides, axis=1), sr)

    def timeline(out: Path) -> np.ndarray:
        run_score(
            ScoreOptions(
                source=str(src),
                model_dir=str(adapting_model),
                output=str(out),
                runner="local",
                table_format="parquet",
                progress=False,
                segments=SegmentConfig(mode="auto", per_channel=True),
            )
        )
        seg = read_segments(str(out), "parquet").to_pylist()
        assert len(seg) >= 2 * 8 and {s["channel"] for s in seg} == {0, 1}
        seg.sort(key=lambda s: (s["channel"], s["start_s"]))
        return np.array([[s[c] for c in PROB_COLUMNS] for s in seg])

    adapted = timeline(tmp_path / "a")
    monkeypatch.setattr(Predictor, "own_adaptation", lambda self, Z, groups: [None] * len(Z))
    plain = timeline(tmp_path / "p")
    assert adapted.shape == plain.shape
    np.testing.assert_allclose(adapted.sum(axis=1), 1.0, atol=1e-6)
    assert np.abs(adapted - plain).max() > 1e-3
