"""Long recordings: peak memory and wall time of scoring one long call, segmented (streaming) vs one clip.

Each case runs `run_score` (local runner, Parquet table, decode in-process: `--decode-timeout-s 0`, so
the whole cost is one process) in a fresh child process and reads the child's peak RSS
(`resource.getrusage(RUSAGE_SELF).ru_maxrss`). The calls are generated: one-minute blocks of four
3 s synthetic utterances with faint noise between them, written block by block.

* `segments=auto`: streaming decode (20 s chunks), 3 s windows every 1.5 s, voice gate, one predict call.
* `segments=off`: the whole file decoded at once (`decode_audio`) and scored as one clip (the old path).

    python bench/bench_segments.py                        # 8 kHz mono, 10 and 60 minutes
    python bench/bench_segments.py --minutes 60 --sr 48000 --channels 2 --modes auto
    python bench/bench_segments.py --minutes 10 --modes auto --context-s 0 1.5 --dense   # the context's cost
    python bench/bench_segments.py --minutes 60 --modes auto --denoise off on            # cleaning's cost
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

_CHILD = """
import json, resource, sys
from aei_batch.scoring.job import ScoreOptions, run_score
from aei_batch.scoring.windows import SegmentConfig
from aei_batch.io.sinks import read_predictions
src, model, out, mode, ctx, dn = sys.argv[1:7]
seg = SegmentConfig(mode=mode, **({"context_s": float(ctx)} if ctx != "default" else {}),
                    **({"denoise": dn == "on"} if dn != "default" else {}))
s = run_score(ScoreOptions(source=src, model_dir=model, output=out, runner="local", table_format="parquet",
                           progress=False, decode_timeout_s=0, max_duration_s=4 * 3600.0,
                           max_file_mb=4096.0, segments=seg))
row = read_predictions(out, "parquet").to_pylist()[0]
print(json.dumps({"status": row["status"], "error": row["error_code"], "n_segments": row["n_segments"],
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def write_call(path: Path, minutes: int, sr: int, channels: int, dense: bool = False) -> None:
    """`minutes` one-minute blocks: four 3 s utterances with 4.5 s pauses, or (`dense`) twenty in a row."""
    from aei_batch.synth import synth_clip

    rng = np.random.default_rng(0)
    block = rng.normal(0, 1e-4, 60 * sr).astype(np.float32)
    emotions = ["angry", "sad", "happy", "calm"] * (5 if dense else 1)
    for k, emotion in enumerate(emotions):
        at = int((3.0 * k if dense else 4.5 + 7.5 * k) * sr)
        block[at : at + 3 * sr] = synth_clip(emotion, 18, sr=sr, seconds=3.0)
    data = block if channels == 1 else np.repeat(block[:, None], channels, axis=1)
    with sf.SoundFile(path, "w", samplerate=sr, channels=channels, subtype="PCM_16") as f:
        for _ in range(minutes):
            f.write(data)


def train_model(root: Path) -> Path:
    """The model `aei-batch train` makes by default (no model options), on generated clips."""
    import aei_batch
    from aei_batch.synth import make_corpus

    make_corpus(root / "corpus", actors=[17, 18], statements=(1, 2), seconds=3.0)
    aei_batch.train(root / "corpus", model_dir=root / "model", holdout_actors=[], progress=False)
    return root / "model"


def run_case(
    src: Path, model: Path, out: Path, mode: str, ctx: str = "default", dn: str = "default"
) -> tuple[dict, float]:
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-c", _CHILD, str(src), str(model), str(out), mode, ctx, dn],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        return {"status": "crashed", "error": res.stderr.strip().splitlines()[-1:], "maxrss_kb": 0}, wall
    return json.loads(res.stdout.strip().splitlines()[-1]), wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=int, nargs="+", default=[10, 60])
    ap.add_argument("--sr", type=int, default=8000)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--modes", nargs="+", default=["auto", "off"])
    ap.add_argument(
        "--model-dir", type=Path, default=None, help="a trained model (default: train the default)"
    )
    ap.add_argument(
        "--context-s",
        nargs="+",
        default=["default"],
        help="segmented runs with each of these window contexts (default: the pipeline's)",
    )
    ap.add_argument(
        "--denoise",
        nargs="+",
        default=["default"],
        choices=["default", "on", "off"],
        help="segmented runs with windows cleaned of noise (on), not (off), or the pipeline's default",
    )
    ap.add_argument("--dense", action="store_true", help="continuous speech: utterances back to back")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="aei-bench-seg-"))
    model = args.model_dir or train_model(root)
    print(f"model: {model} ({json.loads((model / 'card.json').read_text())['feature_set']['name']})")
    head = ("minutes", "file MB", "mode", "context", "denoise", "status", "segments", "peak RSS MB", "wall s")
    print(" ".join(f"{h:>{w}}" for h, w in zip(head, (7, 8, 5, 7, 7, 7, 8, 11, 7), strict=True)))
    for minutes in args.minutes:
        src = root / f"in-{minutes}"
        src.mkdir()
        write_call(src / "call.wav", minutes, args.sr, args.channels, args.dense)
        size = (src / "call.wav").stat().st_size / 1e6
        cases = [
            (m, c, d)
            for m in args.modes
            for c in (args.context_s if m != "off" else ["-"])
            for d in (args.denoise if m != "off" else ["-"])
        ]
        for mode, ctx, dn in cases:
            info, wall = run_case(
                src,
                model,
                root / f"out-{minutes}-{mode}-{ctx}-{dn}",
                mode,
                ctx.replace("-", "default"),
                dn.replace("-", "default"),
            )
            print(
                f"{minutes:>7} {size:>8.0f} {mode:>5} {ctx:>7} {dn:>7} {info['status']:>7} "
                f"{info.get('n_segments') or '-':>8} {info['maxrss_kb'] / 1024:>11.0f} {wall:>7.1f}",
                flush=True,
            )
    speech = "continuous speech" if args.dense else "3 s utterances, 4.5 s pauses"
    print(
        f"({args.sr} Hz, {args.channels} channel(s), {speech}, PCM_16 WAV read by path; one process per case)"
    )
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
