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

    setup = _corpus.study_setup(__doc__)
    if setup is None:
        return 0
    args, cache, clips = setup
    kw: dict[str, Any] = {"workers": args.workers, "denoise": False}
    calls = {"floor": _corpus.build_calls(args.data, _corpus.FEATURE_SET, cache, **kw)}
    (cache / "no_floor").mkdir(exist_ok=True)
    _corpus.NOISE_DBFS = -300.0  # this process only: the same calls without their noise floor
    calls["no floor"] = _corpus.build_calls(args.data, _corpus.FEATURE_SET, cache / "no_floor", **kw)
    y, actors = clips["y"], clips["actors"]
    in_call = call_clips(list(clips["uris"]))
    res: dict[str, list[float]] = {}

    def add(key: str, pred: np.ndarray, truth: np.ndarray) -> None:
        res.setdefault(key, []).append(float((pred.argmax(1) == truth).mean()))

    for _tr, te, predict in _corpus.kept_folds(cache, clips, sa=True):
        Xte, ate, sel = clips["X"][te, 0], actors[te], in_call[te]
        p60 = predict(Xte, [str(a) for a in ate])
        add("all clips, 60-clip groups", p60, y[te])
        add("the calls' 20 clips, 60-clip groups", p60[sel], y[te][sel])
        add("the calls' 20 clips, one group of 20", predict(Xte[sel], [str(a) for a in ate[sel]]), y[te][sel])
        for label, c in calls.items():
            m = np.isin(c["actor"], np.unique(ate))
            pc = predict(c["X"][m], [f"{a}-{b}" for a, b in zip(c["call"][m], c["channel"][m], strict=True)])
            for f, fmt in ((0, "mono 16 kHz"), (1, "stereo 8 kHz")):
                s = c["fmt"][m] == f
                add(f"call windows, {fmt}, {label}", pc[s], c["y"][m][s])
    for key, v in res.items():
        print(f"{key:45s} {np.mean(v):.3f}  ({' '.join(f'{x:.3f}' for x in v)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
