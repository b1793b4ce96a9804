"""Window accuracy of `aei-batch score` on generated calls made of held-out speakers' clips.

Trains the default model (`aei-batch train` with no model options: voice_audio + blend, speaker-adaptive) on
RAVDESS actors outside --test-actors, then builds calls from the test actors' clips joined with 1-2 s pauses
of faint noise (aei_batch/training/calls.py, the builder `aei-batch evaluate --model-dir` uses too): one
16 kHz mono call per test actor, and 8 kHz stereo calls in which two test actors take turns, one per
channel. It scores them with the real command (`--runner local`, `--per-channel` for the stereo calls) and
reads the segments table: a window counts when its centre lies in a clip's speech (windows centred in a
pause are left out); it is right when its top emotion is that clip's emotion. Chance is 1/8.

    python bench/eval_call_windows.py --data ../shared/datasets/ravdess-speech --work /tmp/callwin

Prints one table: mode, windows, share matching, per-file-model share (--no-speaker-adaptive) beside it.
The data is read, never copied into the repository.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf


def _parse_actors(text: str) -> list[int]:
    a, _, b = text.partition("-")
    return list(range(int(a), int(b or a) + 1))


def _clips_of(data: Path, actor: int) -> list[Path]:
    return sorted((data / f"Actor_{actor:02d}").glob("03-01-*"))


def _load(path: Path, sr: int) -> np.ndarray:
    import librosa

    y, _ = librosa.load(path, sr=sr, mono=True)
    return y.astype(np.float32)


def _clips(paths: list[Path], sr: int) -> list[tuple[str, np.ndarray]]:
    from aei_batch.records import parse_ravdess_name

    return [(str(parse_ravdess_name(str(c)).emotion), _load(c, sr)) for c in paths]


def run(cmd: list[str]) -> None:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode not in (0, 3):
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    print(f"  {' '.join(cmd[:3])} ... {time.perf_counter() - t0:.1f} s", file=sys.stderr)


def score_share(
    work: Path, model: Path, calls: Path, truth: dict, per_channel: bool, extra: list[str]
) -> tuple:
    from aei_batch.io.sinks.segments import read_segments
    from aei_batch.training.calls import window_agreement

    out = work / f"out-{calls.name}-{'sa' if not extra else 'pf'}"
    cmd = ["aei-batch", "score", str(calls), "-m", str(model), "-o", str(out), "--runner", "local"]
    cmd += ["--table-format", "parquet", *(["--per-channel"] if per_channel else []), *extra]
    run(cmd)
    res = window_agreement(read_segments(str(out), "parquet").to_pylist(), truth)
    return res["n_counted"], res["share"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="RAVDESS speech folder (Actor_XX subfolders)")
    ap.add_argument("--work", default="/tmp/aei-callwin", help="scratch folder (model, calls, tables)")
    ap.add_argument("--test-actors", default="17-20", help="held-out actors the calls are made of")
    ap.add_argument("--clips", type=int, default=12, help="clips per call")
    args = ap.parse_args()
    from aei_batch.training.calls import build_call, turns

    data, work = Path(args.data), Path(args.work)
    test = _parse_actors(args.test_actors)
    work.mkdir(parents=True, exist_ok=True)
    model = work / "model"
    if not (model / "card.json").exists():
        holdout = ",".join(str(a) for a in test)
        t0 = time.perf_counter()
        run(
            [
                "aei-batch",
                "train",
                "--data",
                str(data),
                "-m",
                str(model),
                "--holdout-actors",
                holdout,
                "--runner",
                "local",
            ]
        )
        print(f"trained the default model on actors outside {holdout} in {time.perf_counter() - t0:.0f} s")
    mono, stereo = work / "calls-16k-mono", work / "calls-8k-stereo"
    truth: dict[tuple[str, int], list] = {}
    for d in (mono, stereo):
        d.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for k, actor in enumerate(test):
        clips = list(rng.choice(_clips_of(data, actor), size=args.clips, replace=False))
        y, spans = build_call(_clips(clips, 16_000), 16_000, seed=actor)
        sf.write(mono / f"call-{actor:02d}.wav", y[0], 16_000)
        truth[(f"call-{actor:02d}.wav", 0)] = spans[0]
        other = test[(k + 1) % len(test)]
        clips_b = list(rng.choice(_clips_of(data, other), size=args.clips, replace=False))
        both, chans = turns(_clips(clips, 8_000), _clips(clips_b, 8_000))
        y, spans = build_call(both, 8_000, seed=100 + actor, channels=chans)
        name = f"call-{actor:02d}-{other:02d}.wav"
        sf.write(stereo / name, y.T, 8_000)
        truth.update({(name, c): s for c, s in spans.items()})
    rows = []
    for label, calls, per_channel in (
        ("16 kHz mono", mono, False),
        ("8 kHz stereo, per channel", stereo, True),
    ):
        n, sa = score_share(work, model, calls, truth, per_channel, [])
        _, pf = score_share(work, model, calls, truth, per_channel, ["--no-speaker-adaptive"])
        rows.append((label, n, sa, pf))
    print(f"\n{'calls':<28} {'windows':>8} {'speaker-adapted':>16} {'per-file':>9}   (chance 0.125)")
    for label, n, sa, pf in rows:
        print(f"{label:<28} {n:>8} {sa:>16.3f} {pf:>9.3f}")
    (work / "result.json").write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
