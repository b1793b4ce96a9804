"""`aei-batch evaluate`: metrics on held-out actors, printed and written as a report folder.

Three sources of predictions, one report:
- a trained model directory applied to a labelled set (speaker-adaptive like scoring, when the card says so);
- `--cv`: actor-grouped cross-validation of a training configuration (feature set, models, mode);
- a predictions table with labels (`label_emotion` and the `p_*` columns, e.g. from `aei-batch score`).

The report folder holds `metrics.json` (every number), `confusion_<name>.png` and `per_actor_<name>.png`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from aei_batch.config import EvalOptions
from aei_batch.config import EvaluateOptions as EvaluateOptions
from aei_batch.errors import ConfigError
from aei_batch.records import COL, EMOTIONS, PROB_COLUMNS

log = logging.getLogger(__name__)


def evaluate_model(opts: EvalOptions) -> dict[str, dict[str, Any]]:
    """A model directory on a labelled set: {model name: report}. The report also holds `telephone` (the
    same files as telephone copies), `noise_floor` (the same files under a -65 dBFS noise floor) and
    `windows` (generated calls scored window by window), unless `opts.telephone` / `opts.noise` /
    `opts.windows` are off."""
    from aei_batch.models.loader import load_model
    from aei_batch.training.cv import cached_featurise
    from aei_batch.training.metrics import classification_report

    model = load_model(str(opts.model_dir), opts.model_name)
    data = cached_featurise(
        str(opts.data),
        model.feature_set.id,
        runner=opts.runner,
        cache_dir=Path(opts.cache_dir) if opts.cache_dir else None,
    )
    data = _unseen_actors(data, model.card.training.get("train_actors") or [])
    predict = model_predictor(model, opts.min_speaker_files)
    report = classification_report(data.y, predict(data.X, data.actors), data.actors)
    report.update(
        {
            "model_version": model.version,
            "speaker_adaptive": model.speaker_adaptive,
            "feature_set": model.feature_set.id,
            "source": opts.data,
        }
    )
    from aei_batch.training.data import featurise_copy

    for copy, key, on in (("telephone", "telephone", opts.telephone), ("noise", "noise_floor", opts.noise)):
        if on:
            copies = featurise_copy(data, model.feature_set.id, copy=copy, runner=opts.runner)
            report[key] = condition_report(predict, data, copies, CONDITIONS[copy])
    if opts.windows:
        from aei_batch.training.calls import windows_report

        report["windows"] = windows_report(str(opts.model_dir), model.name, data, opts)
    return {model.name: report}


def model_predictor(model: Any, min_speaker_files: int) -> Any:
    """(X, actors) -> probabilities of a loaded model, as scoring does: a speaker-adaptive model z-scores
    each actor's rows with that actor's statistics (the training's global ones under the card's minimum)."""
    if not model.speaker_adaptive:
        return lambda X, actors: model.predict_proba8(X)
    from aei_batch.scoring.speaker import GlobalStats

    g = GlobalStats.from_json(model.card.options["global_stats"])
    min_files = int(model.card.options.get("min_speaker_files", min_speaker_files))
    return speaker_predictor(model, g, min_files)


def speaker_predictor(model: Any, g: Any, min_files: int) -> Any:
    """(X, actors) -> the model's probabilities of the rows z-scored per actor (global statistics `g` under
    `min_files`), each actor with `min_files` rows or more adapted on its rows (models/adapt.py), as
    scoring does. `model`: a loaded model (`predict_normalised`) or a fitted classifier."""
    from aei_batch.models.adapt import predict_adapted
    from aei_batch.scoring.speaker import normalise
    from aei_batch.training.cv import speaker_keys

    def predict(X: np.ndarray, actors: np.ndarray) -> np.ndarray:
        keys = speaker_keys(actors)
        Z, _ = normalise(X, keys, g, min_files)
        if hasattr(model, "predict_normalised"):
            adapt = model.adaptation_of(Z, list(keys), min_files)
            return model.predict_normalised(Z, adapt)  # type: ignore[no-any-return]
        return predict_adapted(model, Z, list(keys), min_files)

    return predict


#: what each copy does to a file (features/augment.py: EVAL_COPIES), as the reports say it
CONDITIONS = {
    "telephone": "8 kHz, 300-3,400 Hz band-pass, 8-bit mu-law, back to the analysis rate",
    "noise": "white noise at -65 dBFS (RMS) under the whole file",
}


def condition_report(predict: Any, data: Any, tel: Any, channel: str) -> dict[str, Any]:
    """`tel` (a copy of each of `data`'s files, e.g. its telephone copy: `training.data.featurise_copy`)
    scored by `predict(X, actors)` (speaker statistics from the copies themselves, as a batch of such audio
    would be scored): the classification report, and the drop in points against the same files as they
    are. `channel` says what the copy is."""
    from aei_batch.training.metrics import classification_report

    if not len(tel):
        return {"n": 0, "channel": channel}
    same = np.isin(np.array(data.uris), np.array(tel.uris))
    full = classification_report(data.y[same], predict(data.X[same], data.actors[same]))
    rep = classification_report(tel.y, predict(tel.X, tel.actors))
    keys = ("n", "accuracy", "accuracy_ci95", "uar", "macro_f1", "ece", "per_class_recall")
    out: dict[str, Any] = {k: rep[k] for k in keys}
    out.update(
        {
            "channel": channel,
            "full_band_accuracy": full["accuracy"],
            "full_band_uar": full["uar"],
            "accuracy_drop_points": round(100 * (full["accuracy"] - rep["accuracy"]), 2),
            "uar_drop_points": round(100 * (full["uar"] - rep["uar"]), 2),
        }
    )
    return out


def _unseen_actors(data: Any, train_actors: list[int]) -> Any:
    """Only files of actors the model never trained on: evaluation always holds out whole actors."""
    keep = ~np.isin(data.actors, train_actors)
    if not keep.any():
        raise ConfigError(
            f"every labelled file belongs to actors the model was trained on ({sorted(set(train_actors))})",
            hint="evaluate on other actors, or use --cv for cross-validation",
        )
    if not keep.all():
        log.warning("evaluate: leaving out %d files of the model's training actors", int((~keep).sum()))
    return data.subset(keep)


def evaluate_cv(opts: EvalOptions) -> dict[str, dict[str, Any]]:
    """Actor-grouped CV of the configuration: {model name: report} (with fold accuracies and fit times)."""
    from aei_batch.models.ensemble import build_models
    from aei_batch.training.cv import cached_featurise, cross_validate

    data = cached_featurise(
        str(opts.data),
        opts.feature_set,
        runner=opts.runner,
        cache_dir=Path(opts.cache_dir) if opts.cache_dir else None,
    )
    build_models(opts.models, opts.seed, data.X.shape[1])  # fail fast on unknown names
    out = {}
    dim = data.X.shape[1]
    for name in opts.models:

        def make(name: str = name) -> Any:
            return build_models([name], opts.seed, dim)[0]

        res = cross_validate(
            data,
            make,
            name,
            n_folds=opts.folds,
            speaker_adaptive=opts.speaker_adaptive,
            min_speaker_files=opts.min_speaker_files,
        )
        out[name] = {**res.report, "fit_seconds": res.fit_seconds, "feature_set": opts.feature_set}
    return out


def evaluate_predictions(opts: EvalOptions) -> dict[str, dict[str, Any]]:
    """A predictions table with labels: {model name: report} over its labelled ok rows."""
    from aei_batch.io.sinks import read_predictions
    from aei_batch.training.metrics import classification_report

    table = read_predictions(
        str(opts.predictions),
        opts.table_format,
        catalog_uri=opts.catalog_uri,
        catalog=opts.catalog,
        table=opts.table,
    )
    rows = [r for r in table.to_pylist() if r[COL.status] == "ok" and r[COL.label_emotion] in EMOTIONS]
    if not rows:
        raise ConfigError(
            f"no labelled ok rows in {opts.predictions}",
            hint="evaluate needs rows with label_emotion (RAVDESS-named inputs) and predictions",
        )
    out = {}
    for name in sorted({str(r[COL.model_name]) for r in rows}):
        sel = [r for r in rows if str(r[COL.model_name]) == name]
        y = np.array([EMOTIONS.index(r[COL.label_emotion]) for r in sel])
        proba = np.array([[r[c] or 0.0 for c in PROB_COLUMNS] for r in sel])
        actors = np.array([r[COL.actor] if r[COL.actor] is not None else 0 for r in sel])
        out[name] = classification_report(y, proba, actors)
    return out


def run_evaluate(opts: EvalOptions) -> dict[str, dict[str, Any]]:
    """Compute the reports for the chosen mode and write the report folder."""
    if opts.cv:
        reports = evaluate_cv(opts)
    elif opts.predictions:
        reports = evaluate_predictions(opts)
    else:
        reports = evaluate_model(opts)
    write_report(Path(opts.report_dir), reports, opts)
    return reports


def write_report(folder: Path, reports: dict[str, dict[str, Any]], opts: EvalOptions) -> None:
    from aei_batch.training.plots import confusion_png, per_actor_png

    folder.mkdir(parents=True, exist_ok=True)
    mode = "cv" if opts.cv else "predictions" if opts.predictions else "model"
    for name, rep in reports.items():
        confusion_png(folder / f"confusion_{name}.png", rep, title=f"{name} ({mode})")
        if rep.get("per_actor_accuracy"):
            per_actor_png(folder / f"per_actor_{name}.png", rep, title=f"{name}: accuracy per held-out actor")
    doc = {
        "mode": mode,
        "data": opts.data,
        "model_dir": opts.model_dir,
        "predictions": opts.predictions,
        "models": reports,
    }
    (folder / "metrics.json").write_text(json.dumps(doc, indent=1, default=float))


def print_reports(reports: dict[str, dict[str, Any]], report_dir: str) -> None:
    """The metrics as rich tables: one summary row per model, then per-class recall and per-actor accuracy."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title="evaluation (whole actors held out)", title_justify="left")
    for col in ("model", "n", "accuracy", "95% CI", "fold mean ± sd", "UAR", "macro-F1", "ECE"):
        t.add_column(col)
    for name, r in reports.items():
        lo, hi = r["accuracy_ci95"]
        folds = (
            f"{r['fold_accuracy_mean']:.3f} ± {r['fold_accuracy_sd']:.3f}"
            if "fold_accuracy_mean" in r
            else ""
        )
        t.add_row(
            name,
            str(r["n"]),
            f"{r['accuracy']:.3f}",
            f"{lo:.3f}-{hi:.3f}",
            folds,
            f"{r['uar']:.3f}",
            f"{r['macro_f1']:.3f}",
            f"{r['ece']:.3f}",
        )
    console.print(t)
    cond = conditions_table(reports)
    if cond is not None:
        console.print(cond)
    c = Table(title="recall per class", title_justify="left")
    c.add_column("model")
    for e in EMOTIONS:
        c.add_column(e[:8])
    for name, r in reports.items():
        c.add_row(name, *[f"{r['per_class_recall'].get(e, float('nan')):.2f}" for e in EMOTIONS])
    console.print(c)
    for name, r in reports.items():
        per = r.get("per_actor_accuracy") or {}
        if per:
            console.print(f"{name} per actor: " + ", ".join(f"{a}:{v:.2f}" for a, v in sorted(per.items())))
    console.print(f"report: {report_dir}/metrics.json and PNG figures")


def conditions_table(reports: dict[str, dict[str, Any]]) -> Any:
    """The telephone, noise-floor and window figures of --model-dir reports as one table (None when there
    are none)."""
    from rich.table import Table

    rows = []
    for name, r in reports.items():
        tel = r.get("telephone")
        if tel and tel.get("n"):
            drop = (
                f"{tel['accuracy_drop_points']:.1f} points under full band ({tel['full_band_accuracy']:.3f})"
            )
            acc, uar, ece = (f"{tel[k]:.3f}" for k in ("accuracy", "uar", "ece"))
            rows.append((name, "telephone copies", str(tel["n"]), acc, uar, ece, drop))
        noisy = r.get("noise_floor")
        if noisy and noisy.get("n"):
            drop = f"{noisy['accuracy_drop_points']:.1f} points under the clean files"
            acc, uar, ece = (f"{noisy[k]:.3f}" for k in ("accuracy", "uar", "ece"))
            rows.append((name, "noise floor -65 dBFS", str(noisy["n"]), acc, uar, ece, drop))
        win = r.get("windows") or {}
        for fmt in ("mono16k", "stereo8k"):
            w = win.get(fmt)
            if w:
                share = "n/a" if w["n_counted"] == 0 else f"{w['share']:.3f}"
                note = f"{w['calls']} calls; {w['n_excluded']} windows centred in pauses left out"
                ece = "" if w.get("ece") is None else f"{w['ece']:.3f}"
                rows.append((name, f"windows: {w['label']} calls", str(w["n_counted"]), share, "", ece, note))
    if not rows:
        return None
    t = Table(
        title="telephone, noise floor and call windows (share of windows = clip under the window centre)",
        title_justify="left",
    )
    for col in ("model", "condition", "n", "accuracy / share", "UAR", "ECE", "note"):
        t.add_column(col)
    for row in rows:
        t.add_row(*row)
    return t
