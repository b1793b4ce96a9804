"""`aei-batch evaluate --model-dir` on the default model (`aei-batch train` with no model options): the
telephone copies, the files under a noise floor and the windows of generated calls, beside the per-file
report."""

import json
import time

import pytest
from threadpoolctl import threadpool_limits
from typer.testing import CliRunner

from aei_batch.cli import app

pytestmark = pytest.mark.slow
runner = CliRunner(env={"COLUMNS": "200"})  # the printed tables unwrapped


@pytest.fixture(scope="module")
def default_model(tmp_path_factory):
    """The default model trained on actors 17-19 of synthetic tones, actors 20-21 held out."""
    from aei_batch.synth import make_corpus

    root = tmp_path_factory.mktemp("cond")
    make_corpus(root / "corpus", actors=range(17, 22), statements=(1,), seconds=2.0)
    # One BLAS thread: on a busy shared machine two spinning threads made each LDA fit several times slower.
    with threadpool_limits(limits=1):
        res = runner.invoke(
            app,
            [
                "train",
                "--data",
                str(root / "corpus"),
                "--model-dir",
                str(root / "model"),
                "--holdout-actors",
                "20-21",
                "--runner",
                "local",
                "--no-progress",
                "--cache-dir",
                str(root / "cache"),
            ],
        )
    assert res.exit_code == 0, res.output
    return root


def _evaluate(root, out, *extra):
    with threadpool_limits(limits=1):
        res = runner.invoke(
            app,
            [
                "evaluate",
                str(root / "corpus"),
                "--model-dir",
                str(root / "model"),
                "--report-dir",
                str(out),
                "--runner",
                "local",
                "--cache-dir",
                str(root / "cache"),
                *extra,
            ],
        )
    assert res.exit_code == 0, res.output
    return json.loads((out / "metrics.json").read_text())["models"]["blend"], res.output


def test_train_card_counts_files_and_measures_telephone(default_model):
    card = json.loads((default_model / "model" / "card.json").read_text())
    tr = card["training"]
    assert tr["n_train_files"] == 24 and tr["n_train"] == 9 * 24 and tr["n_files"] == 40
    assert len(tr["train_files"]) == len(set(tr["train_files"])) == 24
    tel = card["models"]["blend"]["heldout"]["telephone"]
    assert tel["n"] == 16 and tel["accuracy"] > 0.5  # chance is 0.125
    md = (default_model / "model" / "MODEL_CARD.md").read_text()
    assert "24 used for training (216 training rows" in md and "## Where it is weak" in md
    assert "Telephone audio: the 16 held-out files" in md
    noisy = card["models"]["blend"]["heldout"]["noise_floor"]
    assert noisy["n"] == 16 and "-65 dBFS" in noisy["channel"] and 0 <= noisy["accuracy"] <= 1
    assert noisy["accuracy_drop_points"] == pytest.approx(
        100 * (noisy["full_band_accuracy"] - noisy["accuracy"]), abs=0.01
    )
    assert "A noise floor: the 16 held-out files" in md and "whole clips are scored as recorded" in md
    assert (card["feature_set"]["name"], card["feature_set"]["version"]) == ("voice_audio", 2)
    assert "leave a clip's steady floor out of its statistics" in md  # what v2 does about it
    win = card["models"]["blend"]["heldout"]["windows"]  # train scores generated calls too
    assert win["mono16k"]["calls"] == win["stereo8k"]["calls"] == 2 and win["mono16k"]["n_counted"] >= 3
    assert "Windows of long recordings: in 2 generated calls" in md
    assert win["denoise"] is True and "cleaned of its channel's steady noise" in md  # how they were scored


def test_evaluate_reports_telephone_and_call_windows(default_model, tmp_path):
    t0 = time.perf_counter()
    rep, printed = _evaluate(default_model, tmp_path / "r")
    for key in (
        "accuracy",
        "accuracy_ci95",
        "uar",
        "macro_f1",
        "per_class_recall",
        "per_actor_accuracy",
        "ece",
    ):
        assert key in rep  # the per-file report as before
    assert rep["n"] == 16 and rep["speaker_adaptive"] is True and rep["accuracy"] > 0.5

    tel = rep["telephone"]
    assert tel["n"] == 16 and 0.5 < tel["accuracy"] <= 1 and 0 <= tel["ece"] <= 1
    assert tel["full_band_accuracy"] == rep["accuracy"]
    assert tel["accuracy_drop_points"] == pytest.approx(100 * (rep["accuracy"] - tel["accuracy"]), abs=0.01)

    noisy = rep["noise_floor"]  # the same files under a -65 dBFS white noise floor
    assert noisy["n"] == 16 and 0 <= noisy["accuracy"] <= 1 and noisy["full_band_accuracy"] == rep["accuracy"]

    win = rep["windows"]
    assert (win["window_s"], win["hop_s"], win["denoise"]) == (3.0, 1.5, True)
    for fmt in ("mono16k", "stereo8k"):
        w = win[fmt]
        assert w["calls"] == 2  # one per held-out actor
        assert w["n_windows"] == w["n_counted"] + w["n_excluded"] and w["n_counted"] >= 3
        assert w["share"] > 0.5, w  # tones of a model trained on tones
    assert "telephone copies" in printed and "windows: 16 kHz mono calls" in printed
    assert "noise floor -65 dBFS" in printed
    assert "windows: 8 kHz stereo calls" in printed
    print(f"evaluate with telephone and windows: {time.perf_counter() - t0:.1f} s")


def test_flags_skip_them_and_windows_follow_the_window_options(default_model, tmp_path):
    rep, printed = _evaluate(default_model, tmp_path / "r", "--no-telephone", "--no-noise", "--no-windows")
    assert "telephone" not in rep and "windows" not in rep and "telephone copies" not in printed
    assert "noise_floor" not in rep and "noise floor" not in printed
    res = runner.invoke(app, ["evaluate", "x", "--model-dir", "m", "--window-s", "2", "--hop-s", "3"])
    assert res.exit_code == 4 and "--hop-s" in res.output
