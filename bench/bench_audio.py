"""Audio, end to end: `aei-batch score` over real recordings against two references on the same files.

* **end to end**: the `aei-batch score` command in a fresh process (listing, Ray start, decode,
  features, model, the table commit; default options), wall time of the whole command, peak memory of
  its process tree (driver, Ray's own processes and the workers).
* **seed-style loop**: one process, file by file: `librosa.load(path, sr=22050)`, the seed features
  computed as the seed study did, with librosa's `mfcc`, `delta` and `rms`
  (`seed_mfcc157_librosa`, the reference aei_batch's own extractor is tested against), the model's
  `predict_proba8` on one row, the rows written to a CSV at the end.
  Wall time of the whole process (imports and first-call compilation included, like the command).
* **compute floor**: decode + resample + the measured model's own feature set only (aei_batch's
  `decode_audio` and the extractor the job runs, `voice_audio` for the default model), a tight warm loop
  on one core over bytes already in memory. No model, no I/O.

* **bound** (`--only ...,bound`): the best any implementation of the command could do on this machine.
  The CPU seconds the command cannot avoid are measured in fresh processes: the interpreter with
  aei_batch's command-line modules, loading the model (its libraries: scikit-learn, skops), importing
  the table library (pyiceberg), plus the floor's per-file CPU for every file. Spreading all of it
  perfectly over all cores, with no listing, I/O, inter-process traffic, rows or commit, gives a
  wall time no real command can beat; `bound/(2 x floor)` is then the highest ratio reachable.

The runs are separate processes, `--reps` times, in a rotating order so that a change in the
machine's load hits all of them alike; the ratios are computed per repetition and their median printed.
Targets on two cores: end to end >= 1.6x the seed loop's files/s and >= 75% of 2x the one-core floor.

    python bench/bench_audio.py                       # 1,200 RAVDESS files (or generated clips), 3 reps
    python bench/bench_audio.py --limit 200 --reps 1  # quick look
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    RAVDESS,
    REPO,
    median,
    print_facts,
    print_table,
    run_sampled,
    self_peak_rss,
    single_thread_env,
    venv_bin,
)

AUDIO_EXT = (".wav", ".flac")


# ------------------------------------------------------------------ data and model


def list_files(data: Path, limit: int | None) -> list[Path]:
    files = sorted(p for p in data.rglob("*") if p.suffix.lower() in AUDIO_EXT)
    return files[:limit] if limit else files


def generated_corpus(root: Path) -> Path:
    """RAVDESS-named synthetic clips like the real ones (3.7 s, 48 kHz FLAC, actors 1-20; 1,280 files)."""
    from aei_batch.synth import make_corpus

    folder = root / "generated"
    make_corpus(folder, actors=range(1, 21), repetitions=(1, 2, 3, 4), sr=48_000, seconds=3.7, ext=".flac")
    return folder


def ensure_model(model_dir: Path | None, data: Path, work: Path) -> Path:
    """Use `model_dir`, or train the seed models (seed_mfcc157) on `data` with the local runner."""
    if model_dir is not None:
        return model_dir
    from aei_batch.training.train import TrainOptions, run_train

    out = work / "model"
    t0 = time.perf_counter()
    run_train(
        TrainOptions(
            data=str(data), model_dir=str(out), holdout_actors=[19, 20], runner="local", progress=False
        )
    )
    print(f"   trained the seed models into {out} in {time.perf_counter() - t0:.0f} s")
    return out


def seed_model_for(model: Path, data: Path, work: Path) -> Path:
    """The seed loop needs seed features' model: `model` itself when it is one, else seed models trained on
    `data` (the loop is the seed study's, whatever model the command is measured with)."""
    card = json.loads((model / "card.json").read_text())
    if (card.get("feature_set") or {}).get("name") == "seed_mfcc157":
        return model
    return ensure_model(None, data, work)


# ------------------------------------------------------------------ the reference loops (child processes)


def inner_seed(files: list[str], model_dir: str, out_csv: str) -> dict[str, float]:
    """The seed study's way: one process, librosa.load + seed features + the model, file by file."""
    import librosa

    from aei_batch.features.audio import seed_mfcc157_librosa
    from aei_batch.models.loader import load_model
    from aei_batch.records import EMOTIONS

    model = load_model(model_dir)
    t0 = time.perf_counter()
    rows = []
    for path in files:
        y, sr = librosa.load(path, sr=22050)
        proba = model.predict_proba8(seed_mfcc157_librosa(y, sr)[None, :])[0]
        rows.append((path, EMOTIONS[int(proba.argmax())], float(proba.max())))
    with open(out_csv, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return {"loop_s": time.perf_counter() - t0, "n": len(files)}


def inner_floor(files: list[str], model_dir: str) -> dict[str, float]:
    """decode_audio + the measured model's feature extractor on bytes in memory, one core, warm."""
    from aei_batch.decode.audio import ANALYSIS_SR, decode_audio
    from aei_batch.models.card import load_card
    from aei_batch.models.loader import check_feature_hash

    fs = check_feature_hash(load_card(Path(model_dir)))
    blobs = [(Path(p).read_bytes(), p) for p in files]
    clip = decode_audio(blobs[0][0], blobs[0][1], sr=ANALYSIS_SR)
    fs.extract(clip.y, clip.sr)  # warm-up: numba compilation, librosa caches
    t0 = time.perf_counter()
    for data, name in blobs:
        clip = decode_audio(data, name, sr=ANALYSIS_SR)
        fs.extract(clip.y, clip.sr)
    return {"loop_s": time.perf_counter() - t0, "n": len(files)}


def inner_stage(files: list[str], model_dir: str) -> dict[str, float]:
    """`ScoreStage` as `aei-batch score` builds it (default limits, decode watchdog, segments auto), called
    in this process on batches of 16, one core, warm: the per-file cost of the stage against the floor."""
    from aei_batch.config import DEFAULT_DECODE_TIMEOUT_S, DEFAULT_MAX_DURATION_S
    from aei_batch.io.storage import list_inputs
    from aei_batch.scoring.rows import RunContext, refs_to_table
    from aei_batch.scoring.stage import ScoreStage
    from aei_batch.scoring.windows import SegmentConfig

    refs = [next(iter(list_inputs(f))) for f in files]
    table = refs_to_table(refs)
    ctx = RunContext.new(
        model_dir,
        max_file_bytes=512 << 20,
        max_duration_s=DEFAULT_MAX_DURATION_S,
        decode_timeout_s=DEFAULT_DECODE_TIMEOUT_S,
        options={"segments": SegmentConfig(mode="auto").as_dict()},
    )
    stage = ScoreStage(ctx)
    stage.setup()
    stage.process_batch(table.slice(0, 2))  # warm-up: the decoder child, first calls
    t0 = time.perf_counter()
    for i in range(0, table.num_rows, 16):
        stage.process_batch(table.slice(i, 16))
    return {"loop_s": time.perf_counter() - t0, "n": len(files)}


def inner_bound(model_dir: str) -> dict[str, float]:
    """CPU seconds of loading the model and of importing the table library, in this fresh process."""
    t0 = time.process_time()
    from aei_batch.models.loader import load_model

    load_model(model_dir)
    t1 = time.process_time()
    import pyiceberg.catalog.sql  # noqa: F401 - what the Iceberg sink imports
    import pyiceberg.table  # noqa: F401

    return {"model_cpu_s": t1 - t0, "table_cpu_s": time.process_time() - t1, "loop_s": float("nan")}


def run_bound(model: Path) -> dict[str, object]:
    """The unavoidable CPU seconds of the command (see the module docstring), each in a fresh process."""
    import resource

    def child_cpu(cmd: list[str]) -> tuple[float, str]:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(cmd, capture_output=True, text=True, env=single_thread_env(), cwd=str(REPO))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode:
            raise RuntimeError(done.stderr[-2000:])
        return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, done.stdout

    start_cpu, _ = child_cpu([sys.executable, "-c", "import aei_batch.cli, aei_batch.scoring.job"])
    _, out = child_cpu([sys.executable, __file__, "--inner", "bound", "-", str(model)])
    res = _result(out)
    return {"wall_s": float("nan"), "start_cpu_s": start_cpu, **res, "peaks": None, "rc": 0}


def run_inner(argv: list[str]) -> None:
    if argv[0] == "bound":
        print("RESULT " + json.dumps(inner_bound(argv[2])))
        return
    mode, list_file = argv[0], argv[1]
    files = Path(list_file).read_text().splitlines()
    if mode == "seed":
        res = inner_seed(files, argv[2], argv[3])
    elif mode == "stage":
        res = inner_stage(files, argv[2])
    else:
        res = inner_floor(files, argv[2])
    res["peak_rss"] = self_peak_rss()
    print("RESULT " + json.dumps(res))


# ------------------------------------------------------------------ the measured runs


def _result(stdout: str) -> dict[str, float]:
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])  # type: ignore[no-any-return]
    raise RuntimeError(f"no RESULT line in:\n{stdout[-2000:]}")


def run_e2e(
    source: Path, model: Path, work: Path, rep: int, extra: list[str], pythonpath: str | None = None
) -> dict[str, object]:
    """`aei-batch score` in a fresh process; with `pythonpath`, the aei_batch package found there (A/B)."""
    out = work / f"table-{rep}-{source.name}-{bool(pythonpath)}"
    cli = [venv_bin("aei-batch")]
    if pythonpath:
        cli = [sys.executable, "-P", "-c", "from aei_batch.cli import app; app()"]  # -P: not the cwd's
    cmd = [
        *cli,
        "score",
        str(source),
        "-m",
        str(model),
        "-o",
        str(out),
        "--no-progress",
        *extra,
    ]
    env = dict(os.environ, AEI_PROGRESS="0")
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    wall, peaks, done = run_sampled(cmd, env=env, cwd=str(REPO))
    m = re.search(r"time\W+([\d.]+) s", done.stdout)
    scored = re.search(r"scored\W+(\d+)", done.stdout)
    shutil.rmtree(out, ignore_errors=True)
    return {
        "wall_s": wall,
        "inner_s": float(m.group(1)) if m else float("nan"),
        "peaks": peaks,
        "rc": done.returncode,
        "scored": int(scored.group(1)) if scored else -1,
    }


def run_ref(mode: str, list_file: Path, model: Path, work: Path) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--inner", mode, str(list_file), str(model), str(work / "seed.csv")]
    if mode == "stage":
        cmd[5:] = [str(model)]
    wall, peaks, done = run_sampled(cmd, env=single_thread_env(), cwd=str(REPO))
    res = _result(done.stdout)
    return {"wall_s": wall, "loop_s": res["loop_s"], "peaks": peaks, "rc": done.returncode}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--inner":
        run_inner(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=RAVDESS, help="folder of audio files (default: RAVDESS)")
    ap.add_argument("--limit", type=int, default=None, help="use the first N files only")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--model-dir", type=Path, default=None, help="a trained model (default: train one)")
    ap.add_argument(
        "--only",
        default="e2e,seed,floor,stage,e2e-ray,e2e16",
        help="which measurements (comma-separated): e2e (default options), e2e-ray / e2e-pool / e2e-local "
        "(runner forced), e2e16 / e2e16-pool (Ray / pool on 16 files: fixed cost), seed, floor, stage, "
        "bound (the best any implementation could do)",
    )
    ap.add_argument("--score-args", default="", help="extra arguments for `aei-batch score`")
    ap.add_argument(
        "--alt-pythonpath",
        default=None,
        help="a folder holding another aei_batch package (e.g. the code before a change): adds e2e-alt, the "
        "same command with that code, to compare versions in the same run",
    )
    args = ap.parse_args()

    print_facts("bench_audio")
    work = Path(tempfile.mkdtemp(prefix="aei-bench-audio-"))
    try:
        data = args.data if args.data.is_dir() and list_files(args.data, 1) else generated_corpus(work)
        files = list_files(data, args.limit or 1200)
        print(f"   data            {data} ({len(files)} files)")
        source = data
        if len(files) < len(list_files(data, None)):  # score exactly these files: a folder of links to them
            source = work / "subset"
            for i, f in enumerate(files):
                (source / f"{i // 100:03d}").mkdir(parents=True, exist_ok=True)
                os.symlink(f, source / f"{i // 100:03d}" / f.name)
        small = work / "first16"
        small.mkdir()
        for f in files[:16]:
            os.symlink(f, small / f.name)
        list_file = work / "files.txt"
        list_file.write_text("\n".join(str(f) for f in files))
        model = ensure_model(args.model_dir, data, work)
        seed_model = seed_model_for(model, data, work) if "seed" in args.only.split(",") else model
        only = args.only.split(",")
        if args.alt_pythonpath and "e2e-alt" not in only:
            only.append("e2e-alt")
        runs: dict[str, list[dict[str, object]]] = {k: [] for k in only}
        for rep in range(args.reps):
            order = only[rep % len(only) :] + only[: rep % len(only)]  # rotate: load drifts hit all alike
            for what in order:
                if what == "e2e":
                    r = run_e2e(source, model, work, rep, args.score_args.split())
                elif what in ("e2e-ray", "e2e-pool", "e2e-local"):  # the same command, runner forced
                    r = run_e2e(source, model, work, rep, ["--runner", what[4:], *args.score_args.split()])
                elif what in ("e2e16", "e2e16-pool"):  # the same command on one batch: the fixed cost
                    runner = "pool" if what == "e2e16-pool" else "ray"
                    r = run_e2e(small, model, work, rep, ["--runner", runner, *args.score_args.split()])
                elif what == "e2e-alt":  # the same command with another aei_batch (--alt-pythonpath)
                    r = run_e2e(source, model, work, rep, args.score_args.split(), args.alt_pythonpath)
                elif what == "bound":
                    r = run_bound(model)
                else:
                    r = run_ref(what, list_file, seed_model if what == "seed" else model, work)
                runs[what].append(r)
                took = (
                    f"start {r['start_cpu_s']:.2f} CPU s" if what == "bound" else f"wall {r['wall_s']:.1f} s"
                )
                print(f"   rep {rep} {what:5s} {took}  load {os.getloadavg()[0]:.1f}", flush=True)
        report(runs, len(files))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(runs: dict[str, list[dict[str, object]]], n: int) -> None:
    rows = []
    for what, rs in runs.items():
        if what == "bound":
            print_table(
                [
                    {
                        "rep": str(i),
                        "start CPU s": f"{r['start_cpu_s']:.2f}",
                        "model load CPU s": f"{r['model_cpu_s']:.2f}",
                        "table library CPU s": f"{r['table_cpu_s']:.2f}",
                    }
                    for i, r in enumerate(rs)
                ],
                "unavoidable CPU of the command besides the files (bound)",
            )
            continue
        count = 16 if what.startswith("e2e16") else n
        for i, r in enumerate(rs):
            peaks = r["peaks"]
            row = {
                "what": what,
                "rep": i,
                "files": count,
                "wall s": f"{r['wall_s']:.1f}",
                "files/s (wall)": f"{count / float(r['wall_s']):.1f}",
            }  # type: ignore[arg-type]
            if "loop_s" in r:
                row["files/s (loop)"] = f"{count / float(r['loop_s']):.1f}"  # type: ignore[arg-type]
            if "inner_s" in r:
                row["files/s (run_score)"] = f"{count / float(r['inner_s']):.1f}"  # type: ignore[arg-type]
                row["rc"] = str(r["rc"])
            row.update(peaks.row())  # type: ignore[attr-defined]
            rows.append(row)
    print_table(rows, f"runs over {n} files (memory: peaks of the process tree)")
    if not {"seed", "floor"} <= runs.keys():
        return
    variants = [w for w in runs if w.startswith("e2e") and not w.startswith("e2e16")]
    ratios = []
    for i in range(len(runs["seed"])):
        s, f = runs["seed"][i], runs["floor"][i]
        f_loop = n / float(f["loop_s"])  # type: ignore[arg-type]
        row = {"seed loop/floor": n / float(s["loop_s"]) / f_loop}  # type: ignore[arg-type]
        if "stage" in runs:  # the stage's own per-file overhead (watchdog, probe, rows) on one core
            row["stage loop/floor"] = n / float(runs["stage"][i]["loop_s"]) / f_loop  # type: ignore[arg-type]
        for v in variants:
            rate = n / float(runs[v][i]["wall_s"])  # type: ignore[arg-type]
            row[f"{v}/seed"] = rate / (n / float(s["wall_s"]))  # type: ignore[arg-type]
            row[f"{v}/(2 x floor)"] = rate / (2 * f_loop)
        for small, big, name in (("e2e16", "e2e-ray", "ray"), ("e2e16-pool", "e2e-pool", "pool")):
            if small in runs and big in runs:  # the fixed cost taken out: the rate once the workers are up
                fixed = float(runs[small][i]["wall_s"])  # type: ignore[arg-type]
                marginal = (n - 16) / (float(runs[big][i]["wall_s"]) - fixed)  # type: ignore[arg-type]
                row[f"{name} fixed s"] = fixed
                row[f"{name} marginal files/s"] = marginal
                row[f"{name} marginal/seed loop"] = marginal / (n / float(s["loop_s"]))  # type: ignore[arg-type]
                row[f"{name} marginal/(2 x floor)"] = marginal / (2 * f_loop)
        if "bound" in runs:  # everything unavoidable, spread perfectly over the cores
            b = runs["bound"][i]
            fixed_cpu = sum(float(b[k]) for k in ("start_cpu_s", "model_cpu_s", "table_cpu_s"))  # type: ignore[arg-type]
            cores = len(os.sched_getaffinity(0))
            bound_s = (fixed_cpu + float(f["loop_s"])) / cores  # type: ignore[arg-type]
            row["bound s"] = bound_s
            row["bound/(2 x floor)"] = n / bound_s / (2 * f_loop)
        if "e2e-alt" in runs and "e2e" in runs:  # > 1: this code is faster than the --alt-pythonpath code
            row["e2e-alt wall/e2e wall"] = float(runs["e2e-alt"][i]["wall_s"]) / float(
                runs["e2e"][i]["wall_s"]
            )  # type: ignore[arg-type]
        ratios.append(row)
    print_table([{k: f"{v:.2f}" for k, v in r.items()} for r in ratios], "ratios per repetition")
    med = {k: median(r[k] for r in ratios) for k in ratios[0]}
    print_table(
        [{k: f"{v:.2f}" for k, v in med.items()}],
        "median ratios (targets: e2e/seed >= 1.6, e2e/(2 x floor) >= 0.75)",
    )
    print(
        "   e2e*: whole commands (wall, start-up included) against the seed loop's whole command\n"
        "   and twice the floor's warm loop; <runner> marginal: (files - 16) / (wall - wall of the same\n"
        "   command on 16 files): the rate once the runner's workers are up."
    )


if __name__ == "__main__":
    main()
