"""Nested, actor-grouped CV of the default audio model on clips, telephone copies and generated calls.

    python bench/eval_audio_nested.py [--data DIR] [--cache-dir /work/wt/cache] [--json OUT]
        [--rows default,before,opensmile] [--workers 2]

Protocol (issue 15): 5-fold actor-grouped CV over the RAVDESS actors in DATA (training/cv.py's folds).
In every outer fold the model is fitted on the training actors only; the `blend` model chooses its
members, their weights and its temperature by an inner speaker-grouped CV inside those rows
(models/ensemble.py: WeightedBlend; the temperature on the original files' rows only, as `train` does),
so no choice sees the test fold. Each row is measured:

* clips      the test actors' files at full band
* telephone  the same files as 8 kHz mu-law 300-3,400 Hz copies (features/augment.py)
* calls      windows (3 s every 1.5 s, the pipeline's own windowing and voice gate) of generated calls
             of the test actors (bench/_corpus.py): 16 kHz mono and 8 kHz stereo telephone
in two modes: per file (no speaker statistics) and speaker-adaptive (z-score per speaker from its own
files; a call channel's windows with that channel's window statistics, the training's global ones
under --min-speaker-files windows, as the pipeline does).

Rows: `default` = voice_audio + blend (select=accuracy among the candidates and every pair of them)
trained on clips, telephone copies, random 2-4 s crops, 0.9x / 1.1x speed copies and their telephone
copies, speaker-adaptive with per-group adaptation of the class means (models/adapt.py: each test speaker,
telephone batch and call channel adapted on its own rows) (what `aei-batch train` does now); `no_adapt` =
the same without the adaptation (the default before 2026-11-30 10:00); `window_crops` = the default with
its three random crops replaced by what a 3 s call window at a random position keeps of the clip once
trimmed to its voiced part (bench/_corpus.py: window_crop; tried 2026-11-30, not kept);
`speed_only` = without the speed copies' telephone copies; `no_speed` = without any speed copies;
`blend_single` = that, choosing among single candidates only (combos=(): the default
before 2026-11-30 06:00); `blend_logloss` = the single-candidate blend with select=logloss (no speed copies);
`before` = rich_audio + the old ensemble on whole clips (the previous default); `opensmile` =
ComParE_2016 / eGeMAPSv02 functionals (from bench/opensmile_features.py's cache; skipped when absent)
with Ledoit-Wolf LDA, LDA with shrinkage 0.5, logistic regression and RBF SVC. Skips (exit 0) when the
dataset is absent.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

DEFAULT_DATA = "/work/shared/datasets/ravdess-speech"
#: rows of each file the model trains on: 0 the file, 1 telephone, 2-3 crops, 4 telephone crop, 5-6 speed
#: x0.9 / x1.1, 7-8 their telephone copies (features/augment.py VARIANTS); "aug" = what `aei-batch train`
#: does, "aug_speed" = without the telephone copies of the speed copies, "aug_v2" = before the speed copies
TRAIN_VARIANTS = {
    "full": (0,),
    "aug_v2": (0, 1, 2, 3, 4),
    "aug_speed": (0, 1, 2, 3, 4, 5, 6),
    "aug": (0, 1, 2, 3, 4, 5, 6, 7, 8),
}


def _zscore(X: np.ndarray, keys: list[str], g: Any, min_files: int) -> np.ndarray:
    from aei_batch.scoring.speaker import normalise

    return normalise(X, keys, g, min_files)[0]


def _summary(y: np.ndarray, proba: np.ndarray, folds: np.ndarray) -> dict[str, Any]:
    from aei_batch.training.metrics import classification_report

    r = classification_report(y, proba)
    accs = [float((proba[folds == k].argmax(1) == y[folds == k]).mean()) for k in np.unique(folds)]
    return {
        "n": r["n"],
        "accuracy": r["accuracy"],
        "ci95": r["accuracy_ci95"],
        "fold_accuracy": accs,
        "fold_mean": float(np.mean(accs)),
        "fold_sd": float(np.std(accs)),
        "uar": r["uar"],
        "macro_f1": r["macro_f1"],
        "ece": r["ece"],
        "per_class_recall": r["per_class_recall"],
    }


def run_row(
    name: str,
    clips: dict[str, np.ndarray],
    calls: dict[str, np.ndarray] | None,
    make: Any,
    *,
    cols: int | None,
    variants: tuple[int, ...],
    min_files: int,
    n_folds: int,
    with_tel: bool = True,
    modes: tuple[bool, ...] = (False, True),
    model_cache: Path | None = None,
    adapt: bool = True,
    raw: dict[tuple[bool, str], tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None,
    window_rows: bool = False,
) -> list[dict[str, Any]]:
    """One row of the table. `raw`, when given, receives each (mode, test)'s labels, probabilities and
    outer fold of every test row. `window_rows`: the model also gets the windows of the training actors'
    calls (its window temperature, as `train` fits it since issue 15 round 8) and the test calls' windows
    are scored as windows."""
    from aei_batch.models.adapt import predict_adapted
    from aei_batch.models.ensemble import WindowRows
    from aei_batch.scoring.speaker import GlobalStats
    from aei_batch.training.cv import actor_folds

    X3 = clips["X"][:, :, :cols] if cols else clips["X"]
    y, actors = clips["y"], clips["actors"]
    out = []
    for sa in modes:
        t_fit = []
        preds: dict[str, tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]] = {}

        def add(key: str, yy: np.ndarray, pp: np.ndarray, k: int, preds: dict[str, Any] = preds) -> None:
            a, b, c = preds.setdefault(key, ([], [], []))
            a.append(yy)
            b.append(pp)
            c.append(np.full(len(yy), k))

        for k, (tr, te) in enumerate(actor_folds(actors, n_folds)):
            Xtr = np.concatenate([X3[tr, v] for v in variants])
            ytr = np.tile(y[tr], len(variants))
            gtr = np.tile(actors[tr], len(variants))
            keys = [f"{a}-{v}" for v in variants for a in actors[tr]]
            originals = np.concatenate([np.full(len(tr), v == 0) for v in variants])  # the files themselves
            g = GlobalStats.fit(Xtr)
            if sa:
                Xtr = _zscore(Xtr, keys, g, min_files)
            saved = model_cache / f"{name.replace(' ', '_')}-sa{int(sa)}-fold{k}.pkl" if model_cache else None
            if saved is not None and saved.is_file():  # bench-only cache of fitted fold models (local pickle)
                model, secs = pickle.loads(saved.read_bytes())
            else:
                model = make()
                t0 = time.process_time()
                kw: dict[str, Any] = {"adapt_groups": np.asarray(keys)} if sa and adapt else {}  # per group
                if window_rows and calls is not None:  # the training actors' call windows
                    mw = np.isin(calls["actor"], np.unique(actors[tr]))
                    Xw = calls["X"][mw][:, :cols] if cols else calls["X"][mw]
                    wk = [f"{c}-{ch}" for c, ch in zip(calls["call"][mw], calls["channel"][mw], strict=True)]
                    if sa:
                        Xw = _zscore(Xw, wk, g, min_files)
                    ag = np.asarray(wk) if sa and adapt else None
                    kw["window_rows"] = WindowRows(Xw, calls["y"][mw], calls["actor"][mw], ag)
                model.fit(Xtr, ytr, groups=gtr, calibration_rows=originals, **kw)
                secs = time.process_time() - t0
                if saved is not None:
                    saved.parent.mkdir(parents=True, exist_ok=True)
                    saved.write_bytes(pickle.dumps((model, secs)))
            t_fit.append(secs)
            for v, label in ((0, "clips"), (1, "telephone")):
                if v and not with_tel:
                    continue
                Xte = X3[te, v]
                tk = [f"{a}-{v}" for a in actors[te]]
                if sa:
                    Xte = _zscore(Xte, tk, g, min_files)
                add(label, y[te], predict_adapted(model, Xte, list(tk), min_files), k)
            if calls is not None:
                m = np.isin(calls["actor"], np.unique(actors[te]))
                Xc = calls["X"][m][:, :cols] if cols else calls["X"][m]
                ck = [f"{c}-{ch}" for c, ch in zip(calls["call"][m], calls["channel"][m], strict=True)]
                if sa:
                    Xc = _zscore(Xc, ck, g, min_files)
                pc = predict_adapted(model, Xc, list(ck), min_files, windows=window_rows)  # channels adapted
                for f, label in ((0, "calls_mono16k"), (1, "calls_stereo8k")):
                    sel = calls["fmt"][m] == f
                    add(label, calls["y"][m][sel], pc[sel], k)
                if "pair" in calls and (calls["pair"] > 1).any():  # the stereo calls by pair (round 8)
                    for p in np.unique(calls["pair"][calls["pair"] > 0]):
                        sel = calls["pair"][m] == p
                        add(f"calls_stereo8k_pair{p}", calls["y"][m][sel], pc[sel], k)
        for label, (ys, ps, fs) in preds.items():
            if raw is not None:
                raw[(sa, label)] = (np.concatenate(ys), np.concatenate(ps), np.concatenate(fs))
            s = _summary(np.concatenate(ys), np.concatenate(ps), np.concatenate(fs))
            out.append(
                {
                    "row": name,
                    "speaker_adaptive": sa,
                    "test": label,
                    "fit_s_per_fold": float(np.mean(t_fit)),
                    **s,
                }
            )
            print(
                f"{name:28s} sa={int(sa)} {label:15s} acc {s['fold_mean']:.3f} ±{s['fold_sd']:.3f} "
                f"[{s['ci95'][0]:.3f}-{s['ci95'][1]:.3f}] n={s['n']} ece {s['ece']:.3f} "
                f"fit {np.mean(t_fit):.1f}s",
                flush=True,
            )
    return out


def markdown(results: list[dict[str, Any]]) -> str:
    """The results as docs/MODELS.md's table."""
    lines = [
        "| row | mode | test | acc (fold mean) | SD | pooled [95 % CI] | n | UAR | ECE | fit CPU s/fold |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lo, hi = r["ci95"]
        lines.append(
            f"| {r['row']} | {'speaker-adaptive' if r['speaker_adaptive'] else 'per file'} | {r['test']} "
            f"| {r['fold_mean']:.3f} | {r['fold_sd']:.3f} | {r['accuracy']:.3f} [{lo:.3f}–{hi:.3f}] "
            f"| {r['n']} | {r['uar']:.3f} | {r['ece']:.3f} | {r['fit_s_per_fold']:.1f} |"
        )
    return "\n".join(lines)


def _sk(name: str, est: Any) -> Any:
    from aei_batch.models.tabular import SklearnClassifier

    return SklearnClassifier(name, est)


def opensmile_makers(dim: int, max_lda_dim: int = 10_000, only: tuple[str, ...] = ()) -> dict[str, Any]:
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    makers = {
        "lda": lambda: _sk(
            "lda",
            make_pipeline(StandardScaler(), LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")),
        ),
        "lda_shrunk": lambda: _sk(  # fixed shrinkage 0.5, as the blend's `lda_shrunk` candidate
            "lda_shrunk",
            make_pipeline(StandardScaler(), LinearDiscriminantAnalysis(solver="eigen", shrinkage=0.5)),
        ),
        "logreg": lambda: _sk(
            "logreg", make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=2000))
        ),
        "svc": lambda: _sk(
            "svc", make_pipeline(StandardScaler(), SVC(C=10, gamma="scale", probability=True))
        ),
    }
    if dim > max_lda_dim:  # LDA's solve is cubic in the dimension: minutes per fit on ComParE's 6,373
        del makers["lda"], makers["lda_shrunk"]
    if only:
        makers = {k: v for k, v in makers.items() if k in only}
    return makers


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--cache-dir", default="/work/wt/cache")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--min-speaker-files", type=int, default=10)
    ap.add_argument(
        "--rows",
        default="default,before,opensmile",
        help="also: cal0, noisy_crops, noisy_crops_spk, noisy_extra, no_adapt, window_crops, speed_only, "
        "no_speed, blend_single, blend_full, blend_logloss",
    )
    ap.add_argument("--modes", default="0,1", help="0 = per file, 1 = speaker-adaptive")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-calls", action="store_true", help="clips and telephone copies only")
    ap.add_argument("--window-s", type=float, default=3.0, help="the calls' windows (the pipeline's default)")
    ap.add_argument("--hop-s", type=float, default=1.5, help="the calls' window hop (the pipeline's default)")
    ap.add_argument("--context-s", type=float, help="the calls' window context (default: the pipeline's)")
    ap.add_argument("--join-gap-s", type=float, help="the calls' join gap (default: the pipeline's)")
    ap.add_argument(
        "--no-denoise",
        action="store_true",
        help="the calls' windows not cleaned of noise (before issue 15 round 6)",
    )
    ap.add_argument(
        "--keep-models",
        action="store_true",
        help="keep fitted fold models in CACHE/fold_models/<feature hash> and reuse them",
    )
    ap.add_argument("--max-lda-dim", type=int, default=10_000, help="openSMILE rows: no LDA above this dim")
    ap.add_argument(
        "--opensmile-models", default="", help="openSMILE rows: only these (lda, lda_shrunk, logreg, svc)"
    )
    ap.add_argument("--opensmile-sets", default="ComParE_2016,eGeMAPSv02")
    ap.add_argument("--json")
    args = ap.parse_args()
    if not Path(args.data).is_dir():
        print(f"SKIP: dataset not found at {args.data}")
        return 0
    import _corpus

    from aei_batch.models.ensemble import build_models

    cache = Path(args.cache_dir)
    clips = _corpus.build_training_clips(args.data, _corpus.FEATURE_SET, cache, args.workers)  # variants 0-8
    calls = (
        None
        if args.no_calls
        else _corpus.build_calls(
            args.data,
            _corpus.FEATURE_SET,
            cache,
            workers=args.workers,
            window_s=args.window_s,
            hop_s=args.hop_s,
            context_s=args.context_s,
            join_gap_s=args.join_gap_s,
            denoise=False if args.no_denoise else None,
        )
    )
    rows = args.rows.split(",")
    results: list[dict[str, Any]] = []
    common: dict[str, Any] = {
        "min_files": args.min_speaker_files,
        "n_folds": args.folds,
        "modes": tuple(m == "1" for m in args.modes.split(",")),
        "model_cache": _corpus.fold_model_dir(cache) if args.keep_models else None,
    }
    dim = clips["X"].shape[2]

    def crops(build: Any, append: bool = False) -> Any:
        """The clips with training's three crops (variants 2-4) replaced by, or followed by, `build()`'s."""

        def make() -> dict[str, np.ndarray]:
            out = dict(clips)
            extra = build(args.data, _corpus.FEATURE_SET, cache, args.workers)
            out["X"] = np.concatenate([clips["X"], extra], axis=1) if append else clips["X"].copy()
            if not append:
                out["X"][:, 2:5] = extra
            return out

        return make

    noisy_spk = lambda *a: _corpus.build_noisy_crops(*a, per_speaker=True)  # noqa: E731
    # key -> (row name = its fold models' file name, the blend's parameters, training variants, the data)
    blend_rows: dict[str, tuple[str, dict[str, Any], tuple[int, ...], Any]] = {
        "default": ("voice_audio+blend (aug+speed+tel, adapt)", {}, TRAIN_VARIANTS["aug"], None),
        # the temperature fitted on the 3 inner folds (before round 5)
        "cal0": (
            "voice_audio+blend (aug+speed+tel, adapt, cal0)",
            {"calibration_folds": 0},
            TRAIN_VARIANTS["aug"],
            None,
        ),
        # a noise floor under the three crops; one level per speaker and copy; the noisy crops added (12 rows)
        "noisy_crops": (
            "voice_audio+blend (aug+speed+tel, adapt, noisy crops)",
            {},
            TRAIN_VARIANTS["aug"],
            crops(_corpus.build_noisy_crops),
        ),
        "noisy_crops_spk": (
            "voice_audio+blend (aug+speed+tel, adapt, noisy crops per speaker)",
            {},
            TRAIN_VARIANTS["aug"],
            crops(noisy_spk),
        ),
        "noisy_extra": (
            "voice_audio+blend (aug+speed+tel, adapt, + noisy crops)",
            {},
            tuple(range(12)),
            crops(_corpus.build_noisy_crops, append=True),
        ),
        # window crops instead of random crops
        "window_crops": (
            "voice_audio+blend (window crops)",
            {},
            TRAIN_VARIANTS["aug"],
            crops(_corpus.build_window_crops),
        ),
        # speed copies without their telephone copies; the copies of before the speed copies
        "speed_only": ("voice_audio+blend (aug+speed, no tel-speed)", {}, TRAIN_VARIANTS["aug_speed"], None),
        "no_speed": ("voice_audio+blend (aug, no speed)", {}, TRAIN_VARIANTS["aug_v2"], None),
        # one candidate, no pairs (the previous default); members and weights by inner log-loss
        "blend_single": (
            "voice_audio+blend single (aug, no speed)",
            {"combos": ()},
            TRAIN_VARIANTS["aug_v2"],
            None,
        ),
        "blend_logloss": (
            "voice_audio+blend select=logloss (aug, no speed)",
            {"select": "logloss", "combos": ()},
            TRAIN_VARIANTS["aug_v2"],
            None,
        ),
        "blend_full": ("voice_audio+blend (clips)", {}, TRAIN_VARIANTS["full"], None),
    }
    for key, (name, params, variants, data) in blend_rows.items():
        if key in rows:
            results += run_row(
                name,
                data() if data else clips,
                calls,
                lambda p=params: build_models(["blend"], 0, dim, {"blend": p})[0],
                cols=None,
                variants=variants,
                **common,
            )
    if "window_temp" in rows:  # the default with its window temperature (issue 15 round 8)
        results += run_row(
            "voice_audio+blend (aug+speed+tel, adapt, window temperature)",
            clips,
            calls,
            lambda: build_models(["blend"], 0, dim)[0],
            cols=None,
            variants=TRAIN_VARIANTS["aug"],
            window_rows=True,
            **common,
        )
    if "before" in rows:
        results += run_row(
            "rich_audio+ensemble (clips)",
            clips,
            calls,
            lambda: build_models(["ensemble"], 0, 701)[0],
            cols=701,
            variants=TRAIN_VARIANTS["full"],
            **common,
        )
    osm = cache / "opensmile.npz"
    if "opensmile" in rows:
        if not osm.is_file():
            print(f"SKIP openSMILE rows: no {osm} (run bench/opensmile_features.py in its own venv)")
        else:
            z = np.load(osm, allow_pickle=False)
            order = {u: i for i, u in enumerate(z["uris"])}
            idx = np.array([order[u] for u in clips["uris"]])
            for fs in args.opensmile_sets.split(","):
                if f"X_{fs}" not in z:
                    print(f"SKIP openSMILE {fs}: not in {osm}")
                    continue
                X = np.nan_to_num(z[f"X_{fs}"][idx])
                oc = {"X": X[:, None, :], "y": clips["y"], "actors": clips["actors"]}
                only = tuple(m for m in args.opensmile_models.split(",") if m)
                for mname, mk in opensmile_makers(X.shape[1], args.max_lda_dim, only).items():
                    results += run_row(
                        f"{fs}+{mname}", oc, None, mk, cols=None, variants=(0,), with_tel=False, **common
                    )
                print(f"{fs}: {len(X) / float(z[f'seconds_{fs}']):.1f} files/s (one process)")
    print(markdown(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
