"""Actor-grouped cross-validation of audio emotion models on RAVDESS speech (actors 01-20).

Prints one table: the seed study's models on its 157 MFCC statistics beside the new feature sets and
models, each with and without speaker-adaptive normalisation, with the time to fit one fold.

    python bench/eval_audio_cv.py [--data DIR] [--folds 5] [--cache-dir DIR] [--quick] [--json OUT]

Features for all files are cached in --cache-dir (keyed by the feature set's hash), so a second run
only trains. Skips with a message (exit 0) when the dataset is absent.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

DEFAULT_DATA = "/work/shared/datasets/ravdess-speech"
SEED_ROWS = [("seed_mfcc157", m) for m in ("svc", "xgboost", "random_forest")]
NEW_ROWS = [("seed_mfcc157", "ensemble")] + [
    ("rich_audio", m) for m in ("lda", "lda_shrunk", "svc_tuned", "logreg", "xgboost_tuned", "ensemble")
]
QUICK_ROWS = [("seed_mfcc157", "svc"), ("rich_audio", "ensemble")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--cache-dir", default="~/.cache/aei_batch/features")
    ap.add_argument("--min-speaker-files", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="only the seed SVC and the new ensemble")
    ap.add_argument("--rows", help="comma list of feature_set:model to run instead of the default table")
    ap.add_argument("--json", help="write all reports to this JSON file")
    args = ap.parse_args()
    if not Path(args.data).is_dir():
        print(f"SKIP: dataset not found at {args.data} (give --data DIR with RAVDESS-named audio)")
        return 0

    from rich.console import Console
    from rich.table import Table

    from aei_batch.models.ensemble import build_models
    from aei_batch.training.cv import cached_featurise, cross_validate

    rows = QUICK_ROWS if args.quick else SEED_ROWS + NEW_ROWS
    if args.rows:
        rows = [tuple(r.split(":", 1)) for r in args.rows.split(",")]  # type: ignore[misc]
    data_by_fs = {}
    for fs in dict.fromkeys(r[0] for r in rows):
        t0 = time.perf_counter()
        data_by_fs[fs] = cached_featurise(args.data, fs, cache_dir=Path(args.cache_dir), runner="ray")
        print(f"features {fs}: {data_by_fs[fs].X.shape} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    table = Table(
        title=f"{args.folds}-fold actor-grouped CV, RAVDESS speech, 8 classes "
        f"(actors {sorted(set(int(a) for a in next(iter(data_by_fs.values())).actors))[0]:02d}-..)",
        title_justify="left",
    )
    for col in (
        "features",
        "model",
        "speaker-adaptive",
        "acc (mean of folds)",
        "fold sd",
        "pooled acc 95% CI",
        "UAR",
        "macro-F1",
        "ECE",
        "fit s/fold",
    ):
        table.add_column(col)
    out = []
    for fs, model in rows:
        data = data_by_fs[fs]
        for sa in (False, True):

            def make(model: str = model, dim: int = data.X.shape[1]) -> object:
                return build_models([model], 0, dim)[0]

            res = cross_validate(
                data,
                make,
                model,
                n_folds=args.folds,
                speaker_adaptive=sa,
                min_speaker_files=args.min_speaker_files,
            )
            r = res.report
            lo, hi = r["accuracy_ci95"]
            fit = sum(res.fit_seconds) / len(res.fit_seconds)
            table.add_row(
                fs,
                model,
                "yes" if sa else "no",
                f"{r['fold_accuracy_mean']:.3f}",
                f"{r['fold_accuracy_sd']:.3f}",
                f"{r['accuracy']:.3f} [{lo:.3f}-{hi:.3f}]",
                f"{r['uar']:.3f}",
                f"{r['macro_f1']:.3f}",
                f"{r['ece']:.3f}",
                f"{fit:.1f}",
            )
            out.append(
                {
                    "feature_set": fs,
                    "model": model,
                    "speaker_adaptive": sa,
                    "fit_seconds": res.fit_seconds,
                    **r,
                }
            )
            print(f"{fs} {model} sa={sa}: {r['fold_accuracy_mean']:.3f}", file=sys.stderr, flush=True)
    Console(width=200).print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
