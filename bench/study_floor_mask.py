"""Study: a noise-floor-aware active-frame mask for `rich_audio` / `voice_audio` (not the library's rule yet).

    python bench/study_floor_mask.py [--margin-db 10] [--range-db 20] [--cache-dir /work/wt/cache]

`rich_audio` takes its statistics over the *active* frames, those within 40 dB of the clip's loudest
(features/rich.py: active_frames). RAVDESS clips have about 80 dB between speech peaks and studio silence,
so silence is left out; under a -65 dBFS noise floor the silence sits only about 30 dB under the peaks and
every frame becomes active, which is what moves the spectral-shape statistics (docs/MODELS.md, round 5).
The rule studied here also keeps a frame out when it is less than `--margin-db` above the clip's own floor
(its 10th-percentile frame level), but never raises the threshold above `--range-db` under the peak, so a
clip with no pauses keeps its frames: threshold = max(peak - 40, min(p10 + margin, peak - range)).

For this study the library function is replaced in this process only (no model or cache of the project's
is touched). The clips and their -65 dBFS noise-floor copies are featurised under the rule and scored by
the default's kept fold models (`eval_audio_nested.py --keep-models`), which were trained on the current
rule: a lower bound for a model retrained on the new one. Prints fold-mean accuracy per mode.

Measured on `voice_audio` v1 (before a floor-aware rule became v2's): AEI_BENCH_FEATURE_SET=voice_audio@v1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

MARGIN_DB, RANGE_DB = 10.0, 20.0


def active_frames(power_db: np.ndarray, top_db: float, *_: object) -> np.ndarray:
    """The studied rule (see the module docstring); at least 3 frames, all when fewer pass."""
    peak, floor = float(power_db.max()), float(np.percentile(power_db, 10))
    mask = power_db >= max(peak - top_db, min(floor + MARGIN_DB, peak - RANGE_DB))
    return mask if mask.sum() >= 3 else np.ones_like(mask, dtype=bool)


def _job(path: str) -> np.ndarray:
    import _corpus

    import aei_batch.features.rich as rich
    from aei_batch.features import get_feature_set
    from aei_batch.features.augment import noise_floor

    rich.active_frames = active_frames  # type: ignore[assignment]  # this study's process only
    fs = get_feature_set(_corpus.FEATURE_SET)
    y = _corpus._load(path)
    return np.stack([fs.extract(v, _corpus.ANALYSIS_SR) for v in (y, noise_floor(y, _corpus.ANALYSIS_SR))])


def main() -> int:
    global MARGIN_DB, RANGE_DB
    import _corpus

    def options(ap: argparse.ArgumentParser) -> None:
        ap.add_argument("--margin-db", type=float, default=MARGIN_DB)
        ap.add_argument("--range-db", type=float, default=RANGE_DB)

    setup = _corpus.study_setup(__doc__, options)
    if setup is None:
        return 0
    args, cache, clips = setup
    MARGIN_DB, RANGE_DB = args.margin_db, args.range_db
    tag = "" if _corpus.FEATURE_SET == "voice_audio@v1" else f"-{_corpus.FEATURE_SET.replace('@', '-')}"
    path = cache / f"floormask-{MARGIN_DB:g}-{RANGE_DB:g}{tag}.npz"
    files = list(clips["uris"])
    if path.is_file():
        X = np.load(path)["X"]
    else:
        with _corpus._pool(args.workers) as pool:
            X = np.stack(pool.map(_job, files, chunksize=8)).astype(np.float32)
        np.savez_compressed(path, X=X)
    changed = np.abs(X[:, 0] - clips["X"][:, 0]).max(axis=1) > 1e-4
    print(
        f"rule: max(peak - 40, min(p10 + {MARGIN_DB:g}, peak - {RANGE_DB:g})) dB; clean clips whose "
        f"features change: {changed.mean():.1%}"
    )
    y, actors = clips["y"], clips["actors"]
    print("| mode | clean, current rule | clean, studied rule | noise -65 dBFS, studied rule |")
    print("| --- | --- | --- | --- |")
    for sa in (False, True):
        acc: list[list[float]] = [[], [], []]
        for _tr, te, predict in _corpus.kept_folds(cache, clips, sa):
            keys = [f"{a}-0" for a in actors[te]]
            for i, Xte in enumerate((clips["X"][te, 0], X[te, 0], X[te, 1])):
                acc[i].append(float((predict(Xte, keys).argmax(1) == y[te]).mean()))
        mode = "speaker-adaptive" if sa else "per file"
        print(f"| {mode} | " + " | ".join(f"{np.mean(a):.3f}" for a in acc) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
