"""How the default's nested-CV fold models do on the test clips under a noise floor, band-limited or trimmed.

    python bench/eval_noise_floor.py [--data DIR] [--cache-dir /work/wt/cache] [--rows default,noisy_crops]

A diagnostic, not a choice: no setting is picked here. For each row of bench/eval_audio_nested.py whose
fold models were kept (`--keep-models`: CACHE/fold_models/<feature hash>), every outer fold's test clips
are featurised under each condition and scored as the nested bench scores clips (speaker-adaptive: each
test actor's clips z-scored and adapted with their own statistics):

* whole        the clip as it is (the nested bench's `clips` row)
* trimmed      the clip cut to its speech span (frames within 35 dB of its loudest, bench/_corpus.py)
* 16k          resampled to 16 kHz and back (no content above 8 kHz)
* noise -65    white noise at -65 dBFS RMS under the whole clip (features/augment.py: noise_floor, the
               level `evaluate` and `train` report as `noise_floor`)
* noise -75    the same 10 dB lower
* 16k+noise    16 kHz, then the -65 dBFS floor: what a window of the generated calls holds
                (bench/_corpus.py: build_calls)

Prints fold-mean accuracy per row, mode and condition. Features are cached in CACHE/noisefloor-*.npz.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

CONDITIONS = ("whole", "trimmed", "16k", "noise -65", "noise -75", "16k+noise")
#: eval_audio_nested.py's row names (their fold models' file names) by --rows key
ROWS = {
    "default": "voice_audio+blend (aug+speed+tel, adapt)",
    "cal0": "voice_audio+blend (aug+speed+tel, adapt, cal0)",
    "noisy_crops": "voice_audio+blend (aug+speed+tel, adapt, noisy crops)",
    "noisy_crops_spk": "voice_audio+blend (aug+speed+tel, adapt, noisy crops per speaker)",
    "noisy_extra": "voice_audio+blend (aug+speed+tel, adapt, + noisy crops)",
}


def _job(path: str) -> np.ndarray:
    import _corpus
    import soxr

    from aei_batch.features import get_feature_set
    from aei_batch.features.augment import noise_floor

    fs = get_feature_set(_corpus.FEATURE_SET)
    sr = _corpus.ANALYSIS_SR
    y = _corpus._load(path)
    a, b = _corpus.speech_span(y, sr)
    band = soxr.resample(soxr.resample(y, sr, 16000), 16000, sr).astype(np.float32)
    versions = [y[a:b], band, noise_floor(y, sr), noise_floor(y, sr, dbfs=-75.0), noise_floor(band, sr)]
    return np.stack([fs.extract(v, sr) for v in versions])


def conditions(data: str, cache: Path, workers: int) -> np.ndarray:
    """(files, 5, dim): every condition but `whole`, in build_clips' file order."""
    import _corpus

    from aei_batch.features import get_feature_set

    fs = get_feature_set(_corpus.FEATURE_SET)
    files = _corpus.list_files(data)
    path = cache / f"noisefloor-{fs.name}-{fs.param_hash}-{len(files)}.npz"
    if path.is_file():
        return np.load(path)["X"]  # type: ignore[no-any-return]
    t0 = time.perf_counter()
    with _corpus._pool(workers) as pool:
        X = np.stack(pool.map(_job, files, chunksize=8)).astype(np.float32)
    np.savez_compressed(path, X=X, uris=np.array(files))
    print(f"conditions: {X.shape} in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    return X


def main() -> int:
    import _corpus

    def options(ap: argparse.ArgumentParser) -> None:
        ap.add_argument("--rows", default="default", help=f"any of {', '.join(ROWS)} (fold models kept)")
        ap.add_argument("--min-speaker-files", type=int, default=10)

    setup = _corpus.study_setup(__doc__, options)
    if setup is None:
        return 0
    args, cache, clips = setup
    Xc = np.concatenate([clips["X"][:, :1], conditions(args.data, cache, args.workers)], axis=1)
    y, actors = clips["y"], clips["actors"]
    print("| row | mode | " + " | ".join(CONDITIONS) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in CONDITIONS) + " |")
    for key in args.rows.split(","):
        name = ROWS[key]
        for sa in (False, True):
            acc: dict[str, list[float]] = {c: [] for c in CONDITIONS}
            for _tr, te, predict in _corpus.kept_folds(cache, clips, sa, name, args.min_speaker_files):
                keys = [f"{a}-0" for a in actors[te]]
                for c, label in enumerate(CONDITIONS):
                    acc[label].append(float((predict(Xc[te, c], keys).argmax(1) == y[te]).mean()))
            cells = " | ".join(f"{np.mean(acc[c]):.3f}" for c in CONDITIONS)
            print(f"| {name} | {'speaker-adaptive' if sa else 'per file'} | {cells} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
