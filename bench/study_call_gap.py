"""Study: where call windows lose against whole clips (the default's kept fold models, speaker-adaptive).

    python bench/study_call_gap.py [--data DIR] [--cache-dir /work/wt/cache]

A diagnostic, not a choice (docs/MODELS.md, round 6). For each outer fold of bench/eval_audio_nested.py
(`--rows default --keep-models` must have run), the test actors are scored as:

* all their clips, each actor's 60 clips one speaker group (the nested bench's `clips` row);
* only the 20 clips each actor's generated mono call is made of (bench/_corpus.py: build_calls), still
  normalised with all 60, then normalised and adapted as one group of 20, as a call channel is;
* the call windows (round 4's default settings: context 1.5 s, gap 0.8 s, not cleaned of noise), with and
  without the −65 dBFS noise floor that build_calls lays under every call (the calls without it are built
  once into CACHE/no_floor/).

Prints fold-mean accuracy per line.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def call_clips(files: list[str]) -> np.ndarray:
    """Which files build_calls puts in each actor's (first) call: its seeded draw, reproduced."""
    import _corpus  # noqa: F401  (same file order as build_calls)

    from aei_batch.records import parse_ravdess_name

    by_actor: dict[int, list[str]] = {}
    for f in files:
        by_actor.setdefault(int(parse_ravdess_name(f).actor or 0), []).append(f)
    rng = np.random.default_rng(15)
    idx = {f: i for i, f in enumerate(files)}
    out = np.zeros(len(files), dtype=bool)
    for a in sorted(by_actor):
        for f in list(rng.permutation(by_actor[a]))[:20]:
            out[idx[f]] = True
    return out


def main() -> int:
    import _corpus
    import eval_audio_nested as E

    from aei_batch.models.adapt import predict_adapted
    from aei_batch.scoring.speaker import GlobalStats, normalise
    from aei_batch.training.cv import actor_folds

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=E.DEFAULT_DATA)
    ap.add_argument("--cache-dir", default="/work/wt/cache")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    if not Path(args.data).is_dir():
        print(f"SKIP: dataset not found at {args.data}")
        return 0
    cache = Path(args.cache_dir)
    clips = _corpus.build_training_clips(args.data, "voice_audio", cache, args.workers)
    kw: dict[str, Any] = {"workers": args.workers, "denoise": False}
    calls = {"floor": _corpus.build_calls(args.data, "voice_audio", cache, **kw)}
    (cache / "no_floor").mkdir(exist_ok=True)
    _corpus.NOISE_DBFS = -300.0  # this process only: the same calls without their noise floor
    calls["no floor"] = _corpus.build_calls(args.data, "voice_audio", cache / "no_floor", **kw)
    y, actors = clips["y"], clips["actors"]
    in_call = call_clips(list(clips["uris"]))
    name = "voice_audio+blend (aug+speed+tel, adapt)"
    res: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        res.setdefault(key, []).append(value)

    for k, (tr, te) in enumerate(actor_folds(actors, 5)):
        saved = _corpus.fold_model_dir(cache) / f"{name.replace(' ', '_')}-sa1-fold{k}.pkl"
        model: Any = pickle.loads(saved.read_bytes())[0]  # bench-only cache (local pickle)
        g = GlobalStats.fit(np.concatenate([clips["X"][tr, v] for v in E.TRAIN_VARIANTS["aug"]]))

        def predict(X: np.ndarray, keys: list[str], model: Any = model, g: Any = g) -> np.ndarray:
            return predict_adapted(model, normalise(X, keys, g, 10)[0], keys, 10).argmax(1)  # type: ignore[no-any-return]

        Xte, ate, sel = clips["X"][te, 0], actors[te], in_call[te]
        keys = [str(a) for a in ate]
        p60 = predict(Xte, keys)
        add("all clips, 60-clip groups", float((p60 == y[te]).mean()))
        add("the calls' 20 clips, 60-clip groups", float((p60[sel] == y[te][sel]).mean()))
        p20 = predict(Xte[sel], [str(a) for a in ate[sel]])
        add("the calls' 20 clips, one group of 20", float((p20 == y[te][sel]).mean()))
        for label, c in calls.items():
            m = np.isin(c["actor"], np.unique(ate))
            ck = [f"{a}-{b}" for a, b in zip(c["call"][m], c["channel"][m], strict=True)]
            pc = predict(c["X"][m], ck)
            for f, fmt in ((0, "mono 16 kHz"), (1, "stereo 8 kHz")):
                s = c["fmt"][m] == f
                add(f"call windows, {fmt}, {label}", float((pc[s] == c["y"][m][s]).mean()))
    for key, v in res.items():
        print(f"{key:45s} {np.mean(v):.3f}  ({' '.join(f'{x:.3f}' for x in v)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
