"""Peak memory of one worker on a long file, and the cost of the decode watchdog.

Scores one generated N-minute 8 kHz WAV with the real ScoreStage (local, in this process) and prints:
the worker's peak RSS (this process) and the decoder child's peak RSS (VmHWM), with segments on (the
default: chunked decode and features) and off (the whole file in memory); then the per-file cost of
decoding a 3.5 s clip in-process vs through the watchdog child.

    python bench/bench_limits.py --model-dir MODEL [--minutes 30]

MODEL: any model directory (e.g. one written by `aei-batch train` or `aei-batch demo`).
"""

from __future__ import annotations

import argparse
import io
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf


def write_long_wav(path: Path, seconds: int, sr: int = 8000) -> None:
    block = (0.3 * np.sin(2 * np.pi * 300 * np.arange(sr * 10) / sr)).astype(np.float32)
    block *= np.linspace(0.5, 1.0, block.size, dtype=np.float32)
    with sf.SoundFile(path, "w", sr, 1, "PCM_16", format="WAV") as f:
        for _ in range(seconds // 10):
            f.write(block)


def child_hwm_mb(pid: int | None) -> float:
    if pid is None:
        return 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def one_run(model_dir: str, wav: Path, segments: str, timeout: float) -> None:
    """Run in a fresh interpreter so each mode's peak RSS is its own."""
    import pyarrow as pa

    from aei_batch.records import COL, FileRef
    from aei_batch.scoring.rows import RunContext, refs_to_table
    from aei_batch.scoring.stage import ScoreStage
    from aei_batch.scoring.windows import SegmentConfig

    opts = {"segments": SegmentConfig(mode=segments).as_dict()}
    ctx = RunContext.new(model_dir, decode_timeout_s=timeout, max_duration_s=4 * 3600.0, options=opts)
    stage = ScoreStage(ctx)
    stage.setup()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    out: pa.Table = stage.process_batch(refs_to_table([FileRef(str(wav), wav.stat().st_size)])).predictions
    secs = time.perf_counter() - t0
    row = out.to_pylist()[0]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = child_hwm_mb(stage.featuriser.decoder.child_pid)
    print(
        f"segments={segments:4s} status={row[COL.status]} {row[COL.error_code] or ''} "
        f"worker peak RSS {peak:7.0f} MB (after model load {base:5.0f} MB), "
        f"decoder child peak {child:6.0f} MB, "
        f"{secs:6.1f} s"
    )


def watchdog_overhead(n: int = 50) -> None:
    from aei_batch.decode.audio import decode_audio
    from aei_batch.runtime.watchdog import Watchdog

    buf = io.BytesIO()
    sf.write(
        buf,
        (0.3 * np.random.default_rng(0).standard_normal(int(3.5 * 48000))).astype(np.float32),
        48000,
        format="WAV",
        subtype="PCM_16",
    )
    data = buf.getvalue()
    wd = Watchdog(30.0)
    t0 = time.perf_counter()
    wd.call(decode_audio, data, "x.wav")
    start = time.perf_counter() - t0
    for label, fn in (
        ("in-process", lambda: decode_audio(data, "x.wav")),
        ("watchdog child", lambda: wd.call(decode_audio, data, "x.wav")),
    ):
        fn()
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        print(f"decode 3.5 s 48 kHz WAV, {label:15s}: {(time.perf_counter() - t0) / n * 1000:6.2f} ms/file")
    print(f"watchdog child start + first decode: {start * 1000:.0f} ms (once per worker)")
    wd.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--minutes", type=int, default=30)
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--_one", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._one:
        one_run(args.model_dir, Path(args._one[0]), args._one[1], args.timeout)
        return
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "long.wav"
        write_long_wav(wav, args.minutes * 60)
        print(f"{args.minutes}-minute 8 kHz 16-bit WAV: {wav.stat().st_size / 1e6:.1f} MB")
        for mode in ("auto", "off"):
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--model-dir",
                    args.model_dir,
                    "--timeout",
                    str(args.timeout),
                    "--_one",
                    str(wav),
                    mode,
                ],
                check=True,
            )
    watchdog_overhead()


if __name__ == "__main__":
    main()
