"""How often `voice_audio` v2's floor rule acts (frame levels only: no model, no labels).

    python bench/study_floor_rule.py [--data DIR] [--every 12] [--n 100]

v2 leaves a clip's steady floor out of its active frames when the clip has one: a run of at least 0.4 s
within 6 dB of its 10th-percentile frame level (features/voice.py: FLOOR_RULE; features/rich.py:
floor_level, active_frames). For every `--every`-th RAVDESS file (`--n` of them), as recorded, as a
telephone copy, under a -65 dBFS noise floor and trimmed to its speech (bench/_corpus.py: speech_span),
prints the share of clips in which a floor is found, the share whose active frames change, and the mean
share of active frames under v1 and v2. The rule's constants were fixed from these figures (docs/FEATURES.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> int:
    import _corpus
    from eval_audio_nested import DEFAULT_DATA

    from aei_batch.features.augment import noise_floor, telephone
    from aei_batch.features.rich import RICH_PARAMS, analysis, floor_level
    from aei_batch.features.voice import FLOOR_RULE

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--every", type=int, default=12)
    ap.add_argument("--n", type=int, default=100)
    args = ap.parse_args()
    if not Path(args.data).is_dir():
        print(f"SKIP: dataset not found at {args.data}")
        return 0
    sr = _corpus.ANALYSIS_SR
    hop_s = RICH_PARAMS["hop_length"] / sr
    files = _corpus.list_files(args.data)[:: args.every][: args.n]
    found: dict[str, list[tuple[float, ...]]] = {}
    for f in files:
        y = _corpus._load(f)
        a, b = _corpus.speech_span(y, sr)
        versions = {
            "as recorded": y,
            "telephone": telephone(y, sr),
            "noise -65": noise_floor(y, sr),
            "trimmed": y[a:b],
        }
        for name, v in versions.items():
            v = np.asarray(v, dtype=np.float32)
            an = analysis(v, sr)
            new = analysis(v, sr, floor=FLOOR_RULE)["active"]
            has = floor_level(an["frame_db"], FLOOR_RULE, hop_s) is not None
            row = (float(has), float(not np.array_equal(an["active"], new)), an["active"].mean(), new.mean())
            found.setdefault(name, []).append(row)
    print(f"{len(files)} clips of {args.data}")
    print("| clips | floor found | active frames changed | active share v1 | v2 |")
    print("| --- | --- | --- | --- | --- |")
    for name, rows in found.items():
        r = np.array(rows)
        print(f"| {name} | " + " | ".join(f"{m:.2f}" for m in r.mean(axis=0)) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
