"""Small jobs: the fixed cost of a run, Ray against the in-process runner, on a few files.

`aei-batch score` over N files (default 10) with `--runner ray`, `--runner local` and `--runner auto`
(the default: local for small inputs when no RAY_ADDRESS is set; see docs/PERFORMANCE.md), each in a
fresh process, alternating, `--reps` times. Prints wall time, peak memory of the process tree and the
ratios measured in this run. The files are generated clips of RAVDESS length (3.7 s at 48 kHz).

    python bench/bench_small.py                 # 10 files, 3 reps
    python bench/bench_small.py --files 40      # where does Ray start to pay?
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, median, print_facts, print_table, run_sampled, venv_bin  # noqa: E402


def make_clips(folder: Path, actors: int, repetitions: tuple[int, ...] = (1,)) -> list[Path]:
    """RAVDESS-named synthetic clips of RAVDESS length (3.7 s, 48 kHz): 16 per actor and repetition."""
    from aei_batch.synth import make_corpus

    return make_corpus(folder, actors=range(1, actors + 1), repetitions=repetitions, sr=48_000, seconds=3.7)


def train(data: Path, out: Path) -> Path:
    from aei_batch.training.train import TrainOptions, run_train

    run_train(
        TrainOptions(
            data=str(data),
            model_dir=str(out),
            holdout_actors=[],
            models=("svc",),
            runner="local",
            progress=False,
        )
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--runners", default="ray,pool,local,auto")
    args = ap.parse_args()
    print_facts("bench_small")
    work = Path(tempfile.mkdtemp(prefix="aei-bench-small-"))
    try:
        make_clips(work / "train", 6)
        model = train(work / "train", work / "model")
        clips = make_clips(work / "all", -(-args.files // 16))[: args.files]
        for clip in clips:  # exactly --files files
            (work / "in" / clip.parent.name).mkdir(parents=True, exist_ok=True)
            clip.rename(work / "in" / clip.parent.name / clip.name)
        runners = args.runners.split(",")
        env = dict(os.environ)
        env.pop("RAY_ADDRESS", None)  # embedded Ray: what a laptop or a single pod does
        results: dict[str, list[tuple[float, object]]] = {r: [] for r in runners}
        for rep in range(args.reps):
            order = runners[rep % len(runners) :] + runners[: rep % len(runners)]
            for runner in order:
                out = work / f"out-{runner}-{rep}"
                cmd = [
                    venv_bin("aei-batch"),
                    "score",
                    str(work / "in"),
                    "-m",
                    str(model),
                    "-o",
                    str(out),
                    "--runner",
                    runner,
                    "--no-progress",
                ]
                wall, peaks, done = run_sampled(cmd, env=env, cwd=str(REPO))
                if done.returncode != 0:
                    raise SystemExit(f"{runner} failed: {done.stderr[-2000:]}")
                results[runner].append((wall, peaks))
                print(f"   rep {rep} {runner:5s} {wall:5.1f} s  load {os.getloadavg()[0]:.1f}", flush=True)
                shutil.rmtree(out, ignore_errors=True)
        rows = []
        for runner, rs in results.items():
            walls = [w for w, _ in rs]
            peak = max(rs, key=lambda r: r[1].tree_pss)[1]  # type: ignore[attr-defined]
            rows.append(
                {
                    "runner": runner,
                    "files": args.files,
                    "median wall s": f"{median(walls):.1f}",
                    "min s": f"{min(walls):.1f}",
                    "max s": f"{max(walls):.1f}",
                    **peak.row(),
                }
            )  # type: ignore[attr-defined]
        print_table(rows, f"aei-batch score over {args.files} files (process wall; memory: worst rep)")
        for other in ("ray", "pool", "auto"):
            if other in results and "local" in results:
                ratios = [r[0] / lo[0] for r, lo in zip(results[other], results["local"], strict=True)]
                print(f"   {other} / local wall, median of reps: {median(ratios):.2f}")
        if "ray" in results and "local" in results:
            ratios = [r[0] / lo[0] for r, lo in zip(results["ray"], results["local"], strict=True)]
            print(
                f"\n   ray / local wall, per rep: {', '.join(f'{x:.2f}' for x in ratios)}; "
                f"median {median(ratios):.2f}"
            )
            extra = median(r[0] - lo[0] for r, lo in zip(results["ray"], results["local"], strict=True))
            print(f"   fixed cost of Ray over local (median difference): {extra:.1f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
