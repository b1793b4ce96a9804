"""Scale: wall time and peak memory as the number of files grows; listing 100,000 S3 keys.

Part 1, local files: `aei-batch score` with the model `aei-batch train` makes by default (trained here on
generated clips) and each of `--runners` (default: pool, then embedded Ray) over 1,000, 5,000 and 20,000
short WAV files (0.5 s at 16 kHz, spread over 50 speakers named in the file names, which the
speaker-adaptive model groups by `--speaker-pattern`). To keep generation cheap, `--distinct` (200)
different clips are written once and hard-linked under many names (one folder per 1,000 files): the job
reads, decodes and scores every name as its own file, but the page cache holds only the distinct bytes,
so the disk is not what is measured. Memory is sampled from /proc over the whole process tree (driver,
Ray's processes, workers, decoder children); it must stay flat (within 20%) from the smallest count to
the largest. From the two largest counts: the rate once the workers are up (the slope) and the fixed
cost (the intercept) of each runner, against twice the one-core compute floor of the model's feature set
(decode + resample + features over the same clips, warm, measured in the same run; target >= 0.75), and
Ray's rate against the pool's (target >= 0.8).

Part 2, S3 listing: a local SeaweedFS server (tests/support/seaweed.py) gets `--s3-keys` tiny objects
(uploaded by parallel threads with boto3); then `aei_batch.io.storage.list_inputs` lists them in a fresh
process: time and the driver's memory. When the upload would take longer than `--upload-budget-s`,
fewer keys are uploaded and the figures are extrapolated linearly (the output says so).

    python bench/bench_scale.py                            # 1k, 5k, 20k files; 100k keys
    python bench/bench_scale.py --counts 1000,5000 --s3-keys 10000   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    MIB,
    REPO,
    print_facts,
    print_table,
    run_sampled,
    self_peak_rss,
    single_thread_env,
    venv_bin,
)

# ------------------------------------------------------------------ part 1: many local files

#: speakers the generated files are spread over (named `-spNN` and found by SPEAKER_PATTERN), so the
#: default speaker-adaptive model runs its speaker statistics over groups of a realistic size
SPEAKERS = 50
SPEAKER_PATTERN = r"-sp(\d+)\.wav$"


def make_inputs(root: Path, distinct: int, counts: list[int]) -> dict[int, Path]:
    """One folder per count, each holding `count` hard links to `distinct` short clips."""
    import soundfile as sf

    from aei_batch.records import EMOTIONS
    from aei_batch.synth import synth_clip

    pool = root / "distinct"
    pool.mkdir(parents=True)
    clips = []
    for i in range(distinct):
        y = synth_clip(
            EMOTIONS[i % 8],
            1 + i % 24,
            repetition=1 + i // 192,
            statement=1 + (i // 8) % 2,
            sr=16_000,
            seconds=0.5,
        )
        path = pool / f"clip-{i:04d}.wav"
        sf.write(path, y, 16_000, subtype="PCM_16")
        clips.append(path)
    folders = {}
    for n in counts:
        folder = root / f"in-{n}"
        for i in range(n):
            sub = folder / f"{i // 1000:03d}"
            if i % 1000 == 0:
                sub.mkdir(parents=True)
            os.link(clips[i % distinct], sub / f"f{i:06d}-sp{i % SPEAKERS:02d}.wav")
        folders[n] = folder
    return folders


def train_model(root: Path, adapt_tau: float = 2.0) -> Path:
    """The model `aei-batch train` makes by default (no model options), on generated clips.

    On speech the default blend adapts its class means to each speaker group (models/adapt.py); the
    generated tones are separable without it, so its inner CV would choose no adaptation. `adapt_tau`
    (> 0) restricts that choice to one relevance factor, so the driver's adaptation pass is measured as
    users get it; 0 leaves the choice to the inner CV."""
    from unittest import mock

    import aei_batch
    from aei_batch.models import adapt
    from aei_batch.synth import make_corpus

    make_corpus(root / "train", actors=range(1, 5), seconds=1.0)
    taus = (adapt_tau,) if adapt_tau > 0 else adapt.TAUS
    with mock.patch.object(adapt, "TAUS", taus):
        aei_batch.train(root / "train", model_dir=root / "model", holdout_actors=[], progress=False)
    return root / "model"


def inner_floor(folder: str, model_dir: str) -> None:
    """One core, warm: decode + resample + the model's feature set over the distinct clips' bytes."""
    from aei_batch.decode.audio import ANALYSIS_SR, decode_audio
    from aei_batch.models.card import load_card
    from aei_batch.models.loader import check_feature_hash

    fs = check_feature_hash(load_card(Path(model_dir)))
    blobs = [(p.read_bytes(), p.name) for p in sorted(Path(folder).glob("*.wav"))]
    fs.extract(decode_audio(blobs[0][0], blobs[0][1], sr=ANALYSIS_SR).y, ANALYSIS_SR)
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < 10.0:
        for data, name in blobs:
            clip = decode_audio(data, name, sr=ANALYSIS_SR)
            fs.extract(clip.y, clip.sr)
            n += 1
    print("RESULT " + json.dumps({"files_per_s": n / (time.perf_counter() - t0), "feature_set": fs.name}))


def measure_floor(root: Path, model: Path) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--inner-floor", str(root / "distinct"), str(model)]
    _, _, done = run_sampled(cmd, env=single_thread_env(), cwd=str(REPO))
    res = next(json.loads(line[7:]) for line in done.stdout.splitlines() if line.startswith("RESULT "))
    print(f"   floor: {res['files_per_s']:.0f} files/s on one core ({res['feature_set']})", flush=True)
    return res


def scale_runs(
    root: Path, counts: list[int], distinct: int, extra: list[str], runners: list[str], adapt_tau: float = 2.0
) -> None:
    t0 = time.perf_counter()
    folders = make_inputs(root, distinct, counts)
    model = train_model(root, adapt_tau)
    print(f"   inputs and model ready in {time.perf_counter() - t0:.0f} s", flush=True)
    from aei_batch.models.card import load_card

    card = load_card(model)
    print(f"   model: {card.default_model}, {card.models[card.default_model].params}", flush=True)
    floor = float(measure_floor(root, model)["files_per_s"])  # type: ignore[arg-type]
    extra = [*extra, "--speaker-pattern", SPEAKER_PATTERN]
    walls = {r: _scale_runner(root, counts, folders, model, [*extra, "--runner", r], r) for r in runners}
    once_up(walls, floor)


def once_up(walls: dict[str, dict[int, float]], floor: float) -> None:
    """Rate once workers are up (the slope between the two largest counts) and fixed cost (the intercept),
    against twice the one-core floor and, for Ray, against the pool."""
    rows, rates = [], {}
    for runner, w in walls.items():
        if len(w) < 2:
            continue
        (n1, w1), (n2, w2) = sorted(w.items())[-2:]
        rate = (n2 - n1) / (w2 - w1)
        rates[runner] = rate
        rows.append(
            {
                "runner": runner,
                "rate once up files/s": f"{rate:.0f}",
                "fixed cost s": f"{w1 - n1 / rate:.1f}",
                "once up/(2 x floor)": f"{rate / (2 * floor):.2f}",
                "whole command/(2 x floor)": f"{n2 / w2 / (2 * floor):.2f}",
            }
        )
    if rows:
        print_table(rows, f"rate once up ({floor:.0f} files/s floor on one core; target once up >= 0.75)")
    if {"pool", "ray"} <= rates.keys():
        print(f"\n   ray once up / pool once up: {rates['ray'] / rates['pool']:.2f} (target >= 0.8)")


def _scale_runner(
    root: Path, counts: list[int], folders: dict[int, Path], model: Path, extra: list[str], runner: str
) -> dict[int, float]:
    rows, peaks, walls = [], {}, {}
    for n in counts:
        out = root / f"out-{n}-{runner}"
        cmd = [
            venv_bin("aei-batch"),
            "score",
            str(folders[n]),
            "-m",
            str(model),
            "-o",
            str(out),
            "--no-progress",
            *extra,
        ]
        load = os.getloadavg()[0]
        wall, pk, done = run_sampled(cmd, cwd=str(REPO), interval_s=0.25)
        if done.returncode != 0:
            raise SystemExit(f"score over {n} files failed ({done.returncode}): {done.stderr[-2000:]}")
        peaks[n], walls[n] = pk, wall
        rows.append(
            {
                "files": n,
                "wall s": f"{wall:.1f}",
                "files/s": f"{n / wall:.0f}",
                **pk.row(),
                "load@start": f"{load:.1f}",
            }
        )
        print(f"   {runner}: {n} files: {wall:.1f} s, tree PSS {pk.tree_pss / MIB:.0f} MiB", flush=True)
        shutil.rmtree(out, ignore_errors=True)
    print_table(rows, f"aei-batch score --runner {runner} over many short files (peaks of the process tree)")
    lo, hi = peaks[counts[0]], peaks[counts[-1]]
    growth = [
        ("driver RSS", hi.driver_rss / lo.driver_rss),
        ("workers+ray RSS", hi.others_rss / lo.others_rss),
        ("tree PSS", hi.tree_pss / lo.tree_pss if lo.tree_pss else float("nan")),
    ]
    print(f"\n   memory at {counts[-1]} files / at {counts[0]} files (target: <= 1.20):")
    for name, g in growth:
        print(f"     {name:16s} {g:.2f}  {'OK' if g <= 1.2 else 'OVER'}")
    return walls


# ------------------------------------------------------------------ part 2: listing S3


def upload_keys(
    client: object, bucket: str, prefix: str, n: int, budget_s: float, threads: int
) -> tuple[int, float]:
    """PUT up to `n` tiny objects with `threads` threads, stopping after `budget_s`; (count, seconds)."""
    done, lock, deadline = [0], threading.Lock(), time.monotonic() + budget_s
    t0 = time.monotonic()
    body = b"RIFF-not-really-audio"

    def put_range(start: int, stop: int) -> None:
        for i in range(start, stop):
            if time.monotonic() > deadline:
                return
            client.put_object(Bucket=bucket, Key=f"{prefix}{i // 1000:03d}/f{i:06d}.wav", Body=body)  # type: ignore[attr-defined]
            with lock:
                done[0] += 1

    chunk = 500
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda s: put_range(s, min(n, s + chunk)), range(0, n, chunk)))
    return done[0], time.monotonic() - t0


def inner_list(uri: str) -> None:
    """In a fresh process: list `uri`, print time, keys and memory (peak and before listing)."""
    from aei_batch.io import storage
    from aei_batch.scoring.rows import refs_to_table

    storage.s3_client()  # boto3 imported and a client built before the baseline: only listing is measured
    before = self_peak_rss()
    t0 = time.perf_counter()
    refs = list(storage.list_inputs(uri))
    t_list = time.perf_counter() - t0
    table = refs_to_table(refs)  # what the driver builds next: the input table handed to the runner
    t_table = time.perf_counter() - t0 - t_list
    print(
        "RESULT "
        + json.dumps(
            {
                "keys": len(refs),
                "list_s": t_list,
                "table_s": t_table,
                "rss_before": before,
                "peak_rss": self_peak_rss(),
                "table_bytes": table.nbytes,
            }
        )
    )


def s3_listing(n: int, budget_s: float, threads: int) -> None:
    sys.path.insert(0, str(REPO))
    from tests.support.seaweed import SeaweedS3

    with SeaweedS3() as s3:
        s3.create_bucket("bench")
        client = s3.client(max_pool_connections=threads)
        load = os.getloadavg()[0]
        uploaded, up_s = upload_keys(client, "bench", "many/", n, budget_s, threads)
        print(
            f"   uploaded {uploaded} keys in {up_s:.0f} s ({uploaded / up_s:.0f}/s, {threads} threads)",
            flush=True,
        )
        env = dict(os.environ, **s3.env())
        cmd = [sys.executable, __file__, "--inner-list", "s3://bench/many/"]
        wall, _, done = run_sampled(cmd, env=env, cwd=str(REPO))
        res = next(json.loads(line[7:]) for line in done.stdout.splitlines() if line.startswith("RESULT "))
    scale = n / uploaded if uploaded else float("nan")
    row = {
        "keys listed": res["keys"],
        "list s": f"{res['list_s']:.1f}",
        "keys/s": f"{res['keys'] / res['list_s']:.0f}",
        "input table s": f"{res['table_s']:.2f}",
        "driver RSS before MiB": f"{res['rss_before'] / MIB:.0f}",
        "driver peak RSS MiB": f"{res['peak_rss'] / MIB:.0f}",
        "growth MiB": f"{(res['peak_rss'] - res['rss_before']) / MIB:.0f}",
        "input table MiB": f"{res['table_bytes'] / MIB:.1f}",
        "load@start": f"{load:.1f}",
    }
    print_table([row], f"storage.list_inputs over s3:// (SeaweedFS on loopback), process wall {wall:.1f} s")
    if uploaded < n:
        print(
            f"\n   NOTE: only {uploaded} of {n} keys uploaded within {budget_s:.0f} s; extrapolated linearly "
            f"to {n}: list {res['list_s'] * scale:.0f} s, "
            f"growth {(res['peak_rss'] - res['rss_before']) * scale / MIB:.0f} MiB"
        )


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--inner-list":
        inner_list(sys.argv[2])
        return
    if len(sys.argv) > 3 and sys.argv[1] == "--inner-floor":
        inner_floor(sys.argv[2], sys.argv[3])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", default="1000,5000,20000")
    ap.add_argument("--distinct", type=int, default=200)
    ap.add_argument("--s3-keys", type=int, default=100_000, help="0: skip the S3 part")
    ap.add_argument("--upload-budget-s", type=float, default=300.0)
    ap.add_argument("--threads", type=int, default=32)
    ap.add_argument("--score-args", default="", help="extra arguments for `aei-batch score`")
    ap.add_argument(
        "--adapt-tau",
        type=float,
        default=2.0,
        help="the default model's per-group adaptation, fixed (generated tones would not choose it; 0: the "
        "inner CV chooses)",
    )
    ap.add_argument(
        "--runners",
        default="pool,ray",
        help="runners to measure, each over every count (auto would switch from the pool to embedded Ray "
        "at 10,000 files, and flatness is a property of one runner)",
    )
    args = ap.parse_args()
    print_facts("bench_scale")
    root = Path(tempfile.mkdtemp(prefix="aei-bench-scale-"))
    try:
        counts = sorted(int(c) for c in args.counts.split(",") if c)
        if counts:
            scale_runs(
                root, counts, args.distinct, args.score_args.split(), args.runners.split(","), args.adapt_tau
            )
        if args.s3_keys:
            s3_listing(args.s3_keys, args.upload_budget_s, args.threads)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
