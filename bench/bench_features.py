"""Per-clip cost of a feature set on one core: the implementation against its reference (issue 17).

For `rich_audio` and `logmel_patch` the reference is the code they
replaced, kept verbatim in `aei_batch.features.rich_reference` (librosa's STFT, filter bank, delta and
spectral contrast, the YIN of two 2048-point transforms per frame); for `seed_mfcc157` it is the seed
study's librosa calls (`seed_mfcc157_librosa`); for `voice_audio` (the default model's features) it is
`rich_audio` followed by its voice-quality block as it was before the block shared `rich_audio`'s
analysis (`aei_batch.features.voice_reference`: a second STFT and its own frame level).

The clips are decoded once (aei_batch's `decode_audio`, at the analysis rate) and held in memory, so
only the feature function is timed. The process pins itself to one core and limits BLAS/OpenMP to one
thread. Each function is warmed up first (librosa's numba kernels compile on the first call). Then, for
every repetition and clip, the reference and the implementation run back to back, in an order that
alternates between repetitions, so that a change in the machine's load hits both alike; the per-clip
ratio (reference / implementation) is taken within that pair and its median printed. Times are wall
clock and this thread's CPU time (which leaves out the time the core was given to another process:
on a shared machine, the steadier of the two). Page faults per clip are printed too: the reference's
fresh multi-megabyte temporaries cost thousands per clip.

    python bench/bench_features.py                          # 60 RAVDESS clips (or generated), 5 reps
    python bench/bench_features.py --clips 20 --reps 3 --profile 15   # and each one's top functions
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported

import argparse  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RAVDESS, loadavg, print_facts, print_table  # noqa: E402

SR = 22_050
Fn = Callable[[np.ndarray, int], np.ndarray]


def pairs(names: list[str]) -> dict[str, tuple[Fn, Fn]]:
    """Feature set name -> (reference, implementation)."""
    from aei_batch.features import audio, get_feature_set, rich, rich_reference, voice_reference

    def voice_before(y: np.ndarray, sr: int) -> np.ndarray:  # `voice_audio` before the shared analysis
        return np.concatenate([rich.rich_audio(y, sr), voice_reference.voice_block(y, sr)])

    refs: dict[str, Fn] = {
        "rich_audio": rich_reference.rich_audio,
        "logmel_patch": rich_reference.logmel_patch,
        "seed_mfcc157": audio.seed_mfcc157_librosa,
        "voice_audio": voice_before,
    }
    # `voice_audio@v1` is the reference's own definition; `voice_audio` (v2) also leaves a clip's steady
    # floor out of its active frames, so on the few clips with one its values differ from the reference's
    return {n: (refs[n.partition("@")[0]], get_feature_set(n).extract) for n in names}


def load_clips(data: Path, n: int) -> tuple[str, list[np.ndarray]]:
    from aei_batch.decode.audio import decode_audio

    files = (
        sorted(p for p in data.glob("**/*") if p.suffix.lower() in (".wav", ".flac")) if data.is_dir() else []
    )
    if files:
        step = max(1, len(files) // n)
        picked = files[::step][:n]
        return f"{len(picked)} recordings from {data}", [
            decode_audio(p.read_bytes(), p.name).y for p in picked
        ]
    from aei_batch.synth import synth_clip

    emotions = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
    clips = [synth_clip(emotions[i % 8], 1 + i % 20, sr=SR, seconds=3.7) for i in range(n)]
    return f"{n} generated 3.7 s clips ({data} absent)", clips


def bench(ref: Fn, new: Fn, clips: list[np.ndarray], reps: int) -> dict[str, list[float]]:
    for fn in (ref, new):  # warm-up: imports, numba compilation, caches, buffers
        for y in clips[:3]:
            fn(y, SR)
    out: dict[str, list[float]] = {k: [] for k in ("ref_wall", "new_wall", "ref_cpu", "new_cpu", "ratio_cpu")}
    for rep in range(reps):
        order = [("ref", ref), ("new", new)] if rep % 2 == 0 else [("new", new), ("ref", ref)]
        for y in clips:
            cpu: dict[str, float] = {}
            for key, fn in order:
                w0, c0 = time.perf_counter(), time.thread_time()
                fn(y, SR)
                cpu[key] = time.thread_time() - c0
                out[f"{key}_wall"].append(time.perf_counter() - w0)
                out[f"{key}_cpu"].append(cpu[key])
            out["ratio_cpu"].append(cpu["ref"] / cpu["new"])
    return out


def faults_per_clip(fn: Fn, clips: list[np.ndarray]) -> float:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for y in clips:
        fn(y, SR)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / len(clips)


def largest_difference(ref: Fn, new: Fn, clips: list[np.ndarray]) -> float:
    """max |new - ref| / (1e-4 + 1e-4 |ref|) over the clips: under 1 is within the tests' tolerance."""
    worst = 0.0
    for y in clips:
        r, g = np.asarray(ref(y, SR), dtype=np.float64), np.asarray(new(y, SR), dtype=np.float64)
        worst = max(worst, float((np.abs(g - r) / (1e-4 + 1e-4 * np.abs(r))).max()))
    return worst


def profile(fn: Fn, clips: list[np.ndarray], top: int, title: str) -> None:
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    for y in clips:
        fn(y, SR)
    prof.disable()
    print(f"\n-- profile: {title}, {len(clips)} clips, top {top} by own time")
    pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(top)


def ms(xs: list[float], q: float) -> str:
    return f"{np.percentile(xs, q) * 1e3:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=RAVDESS, help="folder of recordings (default: %(default)s)")
    ap.add_argument("--clips", type=int, default=60, help="clips, evenly spaced over the sorted files")
    ap.add_argument("--reps", type=int, default=5, help="passes over the clips")
    ap.add_argument(
        "--sets",
        default="voice_audio,rich_audio",
        help="comma-separated: voice_audio,voice_audio@v1,rich_audio,logmel_patch,seed_mfcc157",
    )
    ap.add_argument("--core", type=int, default=None, help="core to pin to (default: the first allowed)")
    ap.add_argument(
        "--profile", type=int, default=0, metavar="N", help="also print each one's top N functions"
    )
    args = ap.parse_args()

    core = args.core if args.core is not None else min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    print_facts(f"bench_features: per-clip cost on core {core}")
    what, clips = load_clips(args.data, args.clips)
    seconds = statistics.median(len(y) / SR for y in clips)
    print(f"   clips           {what}; median {seconds:.2f} s")
    rows = []
    for name, (ref, new) in pairs(args.sets.split(",")).items():
        r = bench(ref, new, clips, args.reps)
        ref_med, new_med = statistics.median(r["ref_cpu"]), statistics.median(r["new_cpu"])
        faults = f"{faults_per_clip(ref, clips):.0f} / {faults_per_clip(new, clips):.0f}"
        rows.append(
            {
                "set": name,
                "ref ms median": ms(r["ref_cpu"], 50),
                "ref p90": ms(r["ref_cpu"], 90),
                "new ms median": ms(r["new_cpu"], 50),
                "new p90": ms(r["new_cpu"], 90),
                "ratio (per clip, median)": f"{statistics.median(r['ratio_cpu']):.2f}",
                "ratio of medians": f"{ref_med / new_med:.2f}",
                "wall ref/new median ms": f"{ms(r['ref_wall'], 50)} / {ms(r['new_wall'], 50)}",
                "faults/clip ref/new": faults,
                "max diff / tol": f"{largest_difference(ref, new, clips):.3f}",
            }
        )
        if args.profile:
            profile(ref, clips, args.profile, f"{name} reference")
            profile(new, clips, args.profile, f"{name} implementation")
    print_table(rows, f"per clip, thread CPU ms ({args.reps} reps x {len(clips)} clips, pairs alternating)")
    print(f"   load average at the end: {loadavg()}")


if __name__ == "__main__":
    main()
