"""Study: whole clips cleaned of the noise measured in their own pauses, at scoring time only.

    python bench/study_clip_denoise.py [--data DIR] [--cache-dir /work/wt/cache]

A diagnostic, not a choice (docs/MODELS.md, round 6: tried, not kept). Call windows are cleaned of their
channel's steady noise (scoring/windows.py, `denoise`); this asks whether the same cleaning, from a clip's
own frames under the voice gate (the same rule: within 6 dB of the quietest of them), would help whole
clips, with the default's kept fold models (`eval_audio_nested.py --rows default --keep-models`), which
were trained on clips as recorded. Each clip, its telephone copy and its −65 dBFS noise-floor copy are
scored as recorded and cleaned (features cached in CACHE/study_clip_denoise*.npz). Prints fold-mean
accuracy per mode.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _job(args: tuple[str]) -> np.ndarray:
    import _corpus

    from aei_batch.features import get_feature_set
    from aei_batch.features.augment import noise_floor, telephone
    from aei_batch.scoring.windows import FRAME, SegmentConfig, frame_levels_db, noise_runs, voice_thresholds

    fs = get_feature_set(_corpus.FEATURE_SET)
    sr = _corpus.ANALYSIS_SR
    y = _corpus._load(args[0])
    out = []
    for v in (y, telephone(y, sr), noise_floor(y, sr)):
        v = np.asarray(v, dtype=np.float32)
        lv = frame_levels_db(v[None, :])[0]
        runs = noise_runs(lv, voice_thresholds(lv[None, :], SegmentConfig())[0])  # the windows' rule
        noise = fs.noise_profile([v[a * FRAME : b * FRAME] for a, b in runs], sr) if runs else None
        out.append(fs.extract(v, sr, noise=noise))
    return np.stack(out)


def main() -> int:
    import _corpus
    import eval_noise_floor

    setup = _corpus.study_setup(__doc__)
    if setup is None:
        return 0
    args, cache, clips = setup
    jobs = [(u,) for u in clips["uris"]]
    tag = "" if _corpus.FEATURE_SET == "voice_audio@v1" else f"-{_corpus.FEATURE_SET.replace('@', '-')}"
    cleaned = _corpus._per_file(cache / f"study_clip_denoise{tag}.npz", _job, jobs, args.workers)
    noisy = eval_noise_floor.conditions(args.data, cache, args.workers)[:, 2]  # the -65 dBFS copies
    conds = {
        "clips": (clips["X"][:, 0], cleaned[:, 0]),
        "telephone": (clips["X"][:, 1], cleaned[:, 1]),
        "noise -65": (noisy, cleaned[:, 2]),
    }
    y, actors = clips["y"], clips["actors"]
    print("| mode | " + " | ".join(f"{c}: as recorded | cleaned" for c in conds) + " |")
    for sa in (False, True):
        acc: dict[tuple[str, int], list[float]] = {}
        for _tr, te, predict in _corpus.kept_folds(cache, clips, sa):
            for c, pair in conds.items():
                for j, X in enumerate(pair):
                    p = predict(X[te], [f"{a}-{c}" for a in actors[te]])
                    acc.setdefault((c, j), []).append(float((p.argmax(1) == y[te]).mean()))
        cells = " | ".join(f"{np.mean(acc[c, 0]):.3f} | {np.mean(acc[c, 1]):.3f}" for c in conds)
        print(f"| {'speaker-adaptive' if sa else 'per file'} | {cells} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
