"""Study: a temperature of its own for call windows, chosen inside the training folds (issue 15 round 8).

    python bench/study_window_temperature.py [--data DIR] [--cache-dir /work/wt/cache] [--json OUT]

The default model's whole-file scores are calibrated (ECE under 0.05), its call windows are not (ECE
0.11-0.14: over-confident; a window holds part of a clip, sometimes the ends of two). A temperature fitted
on whole files, or on 2-4 s crops of them, left the windows' ECE at 0.12-0.13 (docs/MODELS.md). This study
fits one extra temperature on *windows* of generated calls, nested: in each outer fold of the 5-fold
actor-grouped CV, the outer training actors' calls are scored out of fold by the 3-fold inner models of
bench/eval_window_context.py (the same cached fits), and the factor t that minimises their negative
log-likelihood (p ** (1 / t), renormalised; t > 1 softens) is fitted there; the outer test actors' windows
are then scored by the outer model and softened by their fold's t. Speaker-adaptive mode (the default);
calls at the pipeline's default window settings. A power of the probabilities keeps every window's top
emotion, so the accuracy cannot move: only the confidence. Prints each fold's t and the windows' ECE and
NLL before and after.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

_CALLS = ("calls_mono16k", "calls_stereo8k")


def soften(p: np.ndarray, t: float) -> np.ndarray:
    z = np.log(np.clip(p, 1e-12, 1.0)) / t
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]


def nll(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0)).mean())


def fit_t(p: np.ndarray, y: np.ndarray) -> float:
    from scipy.optimize import minimize_scalar

    res = minimize_scalar(lambda lt: nll(soften(p, float(10**lt)), y), bounds=(-1.0, 1.0), method="bounded")
    return float(10**res.x)


def main() -> int:
    import _corpus
    import eval_audio_nested as E
    from eval_window_context import _subset

    from aei_batch.models.ensemble import build_models
    from aei_batch.training.cv import actor_folds
    from aei_batch.training.metrics import expected_calibration_error

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=E.DEFAULT_DATA)
    ap.add_argument("--cache-dir", default="/work/wt/cache")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args()
    if not Path(args.data).is_dir():
        print(f"SKIP: dataset not found at {args.data}")
        return 0
    cache = Path(args.cache_dir)
    models = _corpus.fold_model_dir(cache)
    clips = _corpus.build_training_clips(args.data, _corpus.FEATURE_SET, cache, args.workers)
    calls = _corpus.build_calls(args.data, _corpus.FEATURE_SET, cache, workers=args.workers)
    actors, dim = clips["actors"], clips["X"].shape[2]
    common: dict[str, Any] = {
        "cols": None,
        "variants": E.TRAIN_VARIANTS["aug"],
        "min_files": 10,
        "with_tel": False,
        "modes": (True,),
        "model_cache": models,
    }

    def make() -> Any:
        return build_models(["blend"], 0, dim)[0]

    ts = []
    for k, (tr, _te) in enumerate(actor_folds(actors, 5)):
        raw: dict[Any, Any] = {}
        E.run_row(
            f"inner{k}",
            _subset(clips, np.isin(actors, actors[tr])),
            _subset(calls, np.isin(calls["actor"], actors[tr])),
            make,
            n_folds=3,
            raw=raw,
            **common,
        )
        y = np.concatenate([raw[(True, c)][0] for c in _CALLS])
        p = np.concatenate([raw[(True, c)][1] for c in _CALLS])
        ts.append(fit_t(p, y))
        print(f"outer fold {k}: t = {ts[-1]:.3f} from {len(y)} inner out-of-fold windows", flush=True)
    raw = {}
    name = "voice_audio+blend (aug+speed+tel, adapt)"  # eval_audio_nested.py's default row: same fold models
    E.run_row(name, clips, calls, make, n_folds=5, raw=raw, **common)
    out: dict[str, Any] = {"t": ts}
    print("\n| windows, speaker-adaptive | n | accuracy | ECE before | ECE after | NLL before | NLL after |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for c in (*_CALLS, "clips"):
        y, p, f = raw[(True, c)]
        q = np.concatenate([soften(p[f == k], ts[k]) for k in range(5)]) if c != "clips" else p
        y = np.concatenate([y[f == k] for k in range(5)])
        p = np.concatenate([p[f == k] for k in range(5)])
        row = {
            "n": len(y),
            "accuracy": float((p.argmax(1) == y).mean()),
            "ece_before": expected_calibration_error(p, y),
            "ece_after": expected_calibration_error(q, y),
            "nll_before": nll(p, y),
            "nll_after": nll(q, y),
        }
        out[c] = row
        print(
            f"| {c} | {row['n']} | {row['accuracy']:.3f} | {row['ece_before']:.3f} | {row['ece_after']:.3f} "
            f"| {row['nll_before']:.3f} | {row['nll_after']:.3f} |"
        )
    print("(clips are not softened: their row shows the whole files' calibration beside the windows')")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
