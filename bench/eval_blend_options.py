"""Which blend options help: one pass of fits, then every selection and calibration rule offline.

    python bench/eval_blend_options.py collect OUT.npz [--norm z|rank|robust] [--modes 0,1]
        [--speed | --tel-speed] [--base4] [--inner-folds 3] [--cache-dir /work/wt/cache]
    python bench/eval_blend_options.py report OUT.npz [--rule NAME ...]

`collect` runs the outer 5-fold actor-grouped CV of bench/eval_audio_nested.py (same folds, features,
training copies and speaker normalisation) but, instead of one `blend`, fits every candidate below on
each outer training set twice: inside the blend's own 3-fold speaker-grouped inner CV (out-of-fold
scores on the training rows) and on all training rows (scores on the test fold's clips, telephone
copies and call windows). It stores all of them. `report` then applies a selection rule (which
candidates and pairs compete) and a calibration rule to the inner scores only, and scores the chosen
option on the test folds: every rule is nested, and many rules cost one pass of fits. What WeightedBlend
does with the rule "S4" (4 candidates and their 6 pairs) and calibration "T" is what `aei-batch train`
does; `report` reproduces bench/eval_audio_nested.py's `default` row to the third digit.

Speaker normalisation (`--norm`, speaker-adaptive mode only): z = mean/SD per speaker group (what the
pipeline does), rank = each feature's rank within the group through the normal inverse CDF, robust =
median and IQR/1.349. `--speed` adds the 0.9x / 1.1x speed copies (bench/_corpus.py build_speed),
`--tel-speed` those and their telephone copies (what `aei-batch train` does).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

DATA = "/work/shared/datasets/ravdess-speech"


def _projected(final: Any) -> Any:
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=0.5, n_components=7)
    return make_pipeline(StandardScaler(), lda, final)


def candidates(base4: bool) -> list[tuple[str, Any, int]]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    from aei_batch.models import ensemble as E

    out = [
        ("lda_all", E._lda, 0),
        ("lda_rich", E._lda, 701),
        ("lda_shrunk_all", E._lda_shrunk, 0),
        ("logreg_all", lambda: E._logreg(0), 0),
    ]
    if not base4:
        out += [
            ("lda_s03", lambda: E._lda_shrunk(0.3), 0),
            ("lda_s07", lambda: E._lda_shrunk(0.7), 0),
            ("lda_s05_rich", E._lda_shrunk, 701),
            ("logreg_c003", lambda: E._logreg(0, 0.003), 0),
            ("logreg_c03", lambda: E._logreg(0, 0.03), 0),
            ("lda_svc", lambda: _projected(SVC(gamma="scale", probability=True, random_state=0)), 0),
            ("lda_lr", lambda: _projected(LogisticRegression(max_iter=2000)), 0),
        ]
    return out


def normalise(X: np.ndarray, keys: list[str], g: Any, how: str, min_files: int = 10) -> np.ndarray:
    from scipy.special import ndtri
    from scipy.stats import rankdata

    from aei_batch.scoring.speaker import normalise as z_norm

    if how == "z":
        return z_norm(X, keys, g, min_files)[0].astype(np.float64)
    k = np.asarray(keys)
    out = np.empty(X.shape, dtype=np.float64)
    for key in np.unique(k):
        m = k == key
        Xm = X[m].astype(np.float64)
        if len(Xm) < min_files:
            out[m] = (Xm - g.mean) / g.std
        elif how == "rank":
            out[m] = ndtri((rankdata(Xm, axis=0) - 0.5) / len(Xm))
        else:
            q1, med, q3 = np.percentile(Xm, [25, 50, 75], axis=0)
            s = (q3 - q1) / 1.349
            out[m] = (Xm - med) / np.where(s <= 1e-6, np.maximum(Xm.std(axis=0), 1e-6), s)
    return out


def _proba(est: Any, X: np.ndarray, n: int) -> np.ndarray:
    p = est.predict_proba(X[:, :n] if n else X)
    out = np.full((len(X), 8), 1e-12)
    out[:, est.classes_.astype(int)] = p
    return out


def collect(a: argparse.Namespace) -> None:
    import _corpus
    from sklearn.model_selection import GroupKFold

    from aei_batch.scoring.speaker import GlobalStats
    from aei_batch.training.cv import actor_folds

    cache = Path(a.cache_dir)
    clips = _corpus.build_clips(a.data, _corpus.FEATURE_SET, cache, 1)
    calls = _corpus.build_calls(a.data, _corpus.FEATURE_SET, cache, workers=1)
    X3, y, actors = clips["X"], clips["y"], clips["actors"]
    variants: tuple[int, ...] = (0, 1, 2, 3, 4)
    if a.speed or a.tel_speed:  # copies 5-6: speed x0.9 / x1.1, 7-8: their telephone copies
        X3 = np.concatenate([X3, _corpus.build_speed(a.data, _corpus.FEATURE_SET, cache, 1)], axis=1)
        variants = (0, 1, 2, 3, 4, 5, 6, 7, 8) if a.tel_speed else (0, 1, 2, 3, 4, 5, 6)
    cands = candidates(a.base4)
    store: dict[str, np.ndarray] = {"names": np.array([c[0] for c in cands])}
    for sa in (m == "1" for m in a.modes.split(",")):
        for k, (tr, te) in enumerate(actor_folds(actors, 5)):
            t0 = time.process_time()
            Xtr = np.concatenate([X3[tr, v] for v in variants]).astype(np.float64)
            ytr = np.tile(y[tr], len(variants))
            gtr = np.tile(actors[tr], len(variants))
            var = np.repeat(np.array(variants), len(tr))
            g = GlobalStats.fit(Xtr)
            if sa:
                Xtr = normalise(Xtr, [f"{s}-{v}" for s, v in zip(gtr, var, strict=True)], g, a.norm)
            tests: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            for v, lab in ((0, "clips"), (1, "telephone")):
                Xte = X3[te, v].astype(np.float64)
                if sa:
                    Xte = normalise(Xte, [f"{s}-{v}" for s in actors[te]], g, a.norm)
                tests[lab] = (y[te], Xte)
            m = np.isin(calls["actor"], np.unique(actors[te]))
            Xc = calls["X"][m].astype(np.float64)
            if sa:
                ck = [f"{c}-{ch}" for c, ch in zip(calls["call"][m], calls["channel"][m], strict=True)]
                Xc = normalise(Xc, ck, g, a.norm)
            for f, lab in ((0, "calls_mono16k"), (1, "calls_stereo8k")):
                sel = calls["fmt"][m] == f
                tests[lab] = (calls["y"][m][sel], Xc[sel])
            oof = np.zeros((len(cands), len(Xtr), 8))
            for itr, ite in GroupKFold(a.inner_folds).split(Xtr, ytr, gtr):
                for c, (_, make, n) in enumerate(cands):
                    est = make().fit(Xtr[itr][:, :n] if n else Xtr[itr], ytr[itr])
                    oof[c, ite] = _proba(est, Xtr[ite], n)
            key = f"sa{int(sa)}_f{k}"
            for c, (_, make, n) in enumerate(cands):
                est = make().fit(Xtr[:, :n] if n else Xtr, ytr)
                for lab, (yt, Xt) in tests.items():
                    store.setdefault(f"{key}_{lab}_p", np.zeros((len(cands), len(yt), 8), np.float32))
                    store[f"{key}_{lab}_p"][c] = _proba(est, Xt, n)
            for lab, (yt, _) in tests.items():
                store[f"{key}_{lab}_y"] = yt
            store.update({f"{key}_oof": oof.astype(np.float32), f"{key}_y": ytr, f"{key}_var": var})
            print(f"sa={int(sa)} fold {k}: {time.process_time() - t0:.0f} s CPU", flush=True)
            np.savez_compressed(a.out, **store)  # type: ignore[arg-type]


# ------------------------------------------------------------------ report: rules on the stored scores
def _lp(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(p.astype(np.float64), 1e-12, 1.0))


def _calibrate(z: np.ndarray, idx: np.ndarray, how: str) -> tuple[float, np.ndarray]:
    from scipy.optimize import minimize

    from aei_batch.models.ensemble import _fit_temperature, _softmax
    from aei_batch.training.metrics import expected_calibration_error

    t = _fit_temperature(z, idx)
    if how == "T":
        return t, np.zeros(z.shape[1])
    if how == "T_ece":
        ts = 10 ** np.linspace(-1, 1.5, 200)
        return float(ts[np.argmin([expected_calibration_error(_softmax(z / s), idx) for s in ts])]), np.zeros(
            z.shape[1]
        )
    prior = 0.01 if how == "TB_prior" else 0.0

    def nll(p: np.ndarray) -> float:
        q = z / np.exp(p[0]) + np.r_[0.0, p[1:]]
        q = q - q.max(1, keepdims=True)
        return float(
            (np.log(np.exp(q).sum(1)) - q[np.arange(len(idx)), idx]).mean() + prior * (p[1:] ** 2).sum()
        )

    r = minimize(nll, np.r_[np.log(t), np.zeros(z.shape[1] - 1)], method="L-BFGS-B")
    return float(np.exp(r.x[0])), np.r_[0.0, r.x[1:]]


def rules(names: list[str]) -> dict[str, list[tuple[str, ...]]]:
    base = ["lda_all", "lda_rich", "lda_shrunk_all", "logreg_all"]

    def with_pairs(ms: list[str]) -> list[tuple[str, ...]]:
        return [(m,) for m in ms] + list(itertools.combinations(ms, 2))

    out = {"single4": [(m,) for m in base], "S4": with_pairs(base)}
    if len(names) > 4:
        out |= {
            "single_all": [(m,) for m in names],
            "S4+svc": with_pairs([*base, "lda_svc"]),
            "S4+ldalr": with_pairs([*base, "lda_lr"]),
            "pairs_all": with_pairs(names),
        }
    return out


def report(a: argparse.Namespace) -> None:
    from aei_batch.models.ensemble import _softmax
    from aei_batch.training.metrics import expected_calibration_error

    z = np.load(a.out, allow_pickle=False)
    names = [str(n) for n in z["names"]]
    col = {n: i for i, n in enumerate(names)}
    keys = sorted({k.rsplit("_", 1)[0] for k in z.files if k.endswith("_oof")})
    table = rules(names)
    for rule in a.rule or list(table):
        for cal in a.cal.split(","):
            line = []
            for sa in sorted({k[:3] for k in keys}):
                per: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
                chosen = []
                for key in (k for k in keys if k.startswith(sa)):
                    idx, var = z[f"{key}_y"], z[f"{key}_var"]
                    oof = z[f"{key}_oof"]
                    logits = [np.mean([_lp(oof[col[m]]) for m in opt], axis=0) for opt in table[rule]]
                    best = int(np.argmax([(lg.argmax(1) == idx).mean() for lg in logits]))
                    rows = var == 0 if cal != "T_all" else np.ones(len(idx), bool)
                    t, b = _calibrate(logits[best][rows], idx[rows], "T" if cal == "T_all" else cal)
                    chosen.append("+".join(table[rule][best]))
                    for lab in ("clips", "telephone", "calls_mono16k", "calls_stereo8k"):
                        p = z[f"{key}_{lab}_p"]
                        zt = np.mean([_lp(p[col[m]]) for m in table[rule][best]], axis=0)
                        per.setdefault(lab, []).append((z[f"{key}_{lab}_y"], _softmax(zt / t + b)))
                for lab, v in per.items():
                    acc = np.mean([(p.argmax(1) == yt).mean() for yt, p in v])
                    ece = expected_calibration_error(
                        np.concatenate([p for _, p in v]), np.concatenate([yt for yt, _ in v])
                    )
                    line.append(f"{'SA' if sa == 'sa1' else 'PF'} {lab} {acc:.3f}/{ece:.3f}")
                if a.verbose:
                    print(f"  {sa} chose: {', '.join(chosen)}")
            print(f"{rule:10s} {cal:8s} " + " | ".join(line), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("collect", "report"))
    ap.add_argument("out")
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--cache-dir", default="/work/wt/cache")
    ap.add_argument("--norm", default="z", choices=("z", "rank", "robust"))
    ap.add_argument("--modes", default="0,1")
    ap.add_argument("--speed", action="store_true", help="add the speed copies")
    ap.add_argument(
        "--tel-speed", action="store_true", help="add the speed copies and their telephone copies"
    )
    ap.add_argument("--base4", action="store_true", help="the blend's four candidates only")
    ap.add_argument("--inner-folds", type=int, default=3)
    ap.add_argument("--rule", action="append", help="report: selection rule(s) (default: all)")
    ap.add_argument("--cal", default="T,TB,TB_prior,T_ece,T_all", help="report: calibration rules")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    if not Path(a.data).is_dir():
        print(f"SKIP: dataset not found at {a.data}")
        return 0
    collect(a) if a.what == "collect" else report(a)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
