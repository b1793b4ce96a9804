"""`aei-batch train` with the new options and `aei-batch evaluate` writing its report (PNG + JSON)."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from aei_batch.cli import app
from aei_batch.models.card import load_card
from aei_batch.models.loader import load_model
from aei_batch.training.train import TrainOptions, run_train

runner = CliRunner()


@pytest.fixture(scope="module")
def sa_model(synth_corpus, tmp_path_factory) -> Path:
    """rich_audio + lda/ensemble, speaker-adaptive, trained on actors 17-20 (in-process runner)."""
    model_dir = tmp_path_factory.mktemp("sa_model")
    run_train(
        TrainOptions(
            data=str(synth_corpus),
            model_dir=str(model_dir),
            holdout_actors=[21, 22, 23, 24],
            feature_set="rich_audio",
            models=("ensemble", "lda"),
            speaker_adaptive=True,
            min_speaker_files=4,
            runner="local",
            progress=False,
        )
    )
    return model_dir


def test_card_round_trip_of_a_speaker_adaptive_ensemble(sa_model, synth_corpus):
    card = load_card(sa_model)
    assert card.options["speaker_adaptive"] is True and card.options["min_speaker_files"] == 4
    assert len(card.options["global_stats"]["mean"]) == card.feature_set["dim"]
    assert card.feature_set["name"] == "rich_audio"
    assert set(card.models) == {"ensemble", "lda"}
    for name, art in card.models.items():
        assert art.file.endswith(".skops") and len(art.sha256) == 64
        assert art.heldout["n"] == 32  # 4 held-out actors x 8 emotions
        model = load_model(str(sa_model), name)
        assert model.speaker_adaptive
        proba = model.predict_proba8(np.zeros((3, card.feature_set["dim"]), np.float32))
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)


def test_evaluate_a_model_dir_writes_png_and_json(sa_model, synth_corpus, tmp_path):
    out = tmp_path / "report"
    res = runner.invoke(
        app,
        [
            "evaluate",
            str(synth_corpus),
            "--model-dir",
            str(sa_model),
            "--model",
            "lda",
            "--report-dir",
            str(out),
            "--runner",
            "local",
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "metrics.json").read_text())
    rep = doc["models"]["lda"]
    assert (
        doc["mode"] == "model" and rep["n"] == 32 and rep["speaker_adaptive"] is True
    )  # training actors left out
    for key in (
        "accuracy",
        "accuracy_ci95",
        "uar",
        "macro_f1",
        "per_class_recall",
        "per_actor_accuracy",
        "ece",
    ):
        assert key in rep
    assert set(rep["per_actor_accuracy"]) == {f"{a:02d}" for a in range(21, 25)}
    for png in ("confusion_lda.png", "per_actor_lda.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "accuracy" in res.output and "recall per class" in res.output


def test_evaluate_cv_reports_folds(synth_corpus, tmp_path):
    out = tmp_path / "cv"
    res = runner.invoke(
        app,
        [
            "evaluate",
            str(synth_corpus),
            "--cv",
            "--models",
            "lda,svc",
            "--folds",
            "4",
            "--feature-set",
            "seed_mfcc157",
            "--min-speaker-files",
            "4",
            "--report-dir",
            str(out),
            "--runner",
            "local",
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "metrics.json").read_text())
    assert set(doc["models"]) == {"lda", "svc"}
    for rep in doc["models"].values():
        assert len(rep["fold_accuracy"]) == 4 and rep["n"] == 64 and rep["speaker_adaptive"] is True
    assert (out / "confusion_svc.png").is_file()


def test_evaluate_a_predictions_table(trained_model, synth_corpus, tmp_path):
    from aei_batch.scoring.job import ScoreOptions, run_score

    run_score(
        ScoreOptions(
            source=str(synth_corpus),
            model_dir=str(trained_model),
            output=str(tmp_path / "t"),
            runner="local",
            table_format="parquet",
            progress=False,
        )
    )
    res = runner.invoke(
        app,
        [
            "evaluate",
            "--predictions",
            str(tmp_path / "t"),
            "--format",
            "parquet",
            "--report-dir",
            str(tmp_path / "r"),
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert next(iter(doc["models"].values()))["n"] == 64


def test_evaluate_needs_exactly_one_mode(tmp_path):
    res = runner.invoke(app, ["evaluate", "x", "--cv", "--predictions", "y", "--report-dir", str(tmp_path)])
    assert res.exit_code == 4 and "exactly one" in res.output


def test_train_rejects_unknown_models(synth_corpus, tmp_path):
    res = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(synth_corpus),
            "--model-dir",
            str(tmp_path / "m"),
            "--models",
            "svc,nope",
            "--runner",
            "local",
            "--no-progress",
        ],
    )
    assert res.exit_code == 4 and "nope" in res.output


@pytest.mark.slow
def test_keras_cnn_saves_and_loads_with_safe_mode(synth_corpus, tmp_path):
    from aei_batch.models.keras_audio import KerasAudioClassifier

    model_dir = tmp_path / "cnn"
    card = run_train(
        TrainOptions(
            data=str(synth_corpus),
            model_dir=str(model_dir),
            holdout_actors=[23, 24],
            feature_set="logmel_patch",
            models=("cnn",),
            runner="local",
            progress=False,
            epochs=3,
        )
    )
    art = card.models["cnn"]
    assert art.kind == "keras_audio" and art.file == "cnn.keras"
    loaded = load_model(str(model_dir), "cnn")
    assert isinstance(loaded.classifier, KerasAudioClassifier)
    X = np.zeros((2, loaded.feature_set.dim), np.float32)
    np.testing.assert_allclose(loaded.predict_proba8(X).sum(axis=1), 1.0, rtol=1e-5)
    # a tampered artifact is refused before Keras sees it
    (model_dir / "cnn.keras").write_bytes(b"not a keras file")
    from aei_batch.errors import ModelError

    with pytest.raises(ModelError, match="checksum"):
        load_model(str(model_dir), "cnn")


@pytest.mark.parametrize("name", ["lda_calibrated", "lda_shrunk", "svc_tuned", "logreg", "xgboost_tuned"])
def test_new_tabular_kinds_round_trip_through_a_card(name, tmp_path):
    """Every new model saves in a safe format and loads back through the card with the same probabilities."""
    from aei_batch.features import get_feature_set
    from aei_batch.models.card import ArtifactInfo, ModelCard, sha256_file, write_card
    from aei_batch.models.ensemble import build_models
    from aei_batch.records import EMOTIONS

    rng = np.random.default_rng(0)
    y = np.tile(np.arange(8), 10)
    X = (rng.normal(size=(80, 12)) + y[:, None]).astype(np.float32)
    model = build_models([name], 0, 12)[0]
    model.fit(X, y)
    path = tmp_path / f"{name}{model.suffix}"
    model.save(path)
    fs = get_feature_set("seed_mfcc157")
    art = ArtifactInfo(file=path.name, kind=model.kind, sha256=sha256_file(path), classes=list(EMOTIONS))
    write_card(
        tmp_path,
        ModelCard(
            model_version="v",
            created_at="now",
            label_order=list(EMOTIONS),
            feature_set=fs.card(),
            default_model=name,
            models={name: art},
        ),
    )
    loaded = load_model(str(tmp_path))
    np.testing.assert_allclose(loaded.predict_proba8(X), model.predict_proba8(X), rtol=1e-6)
