"""Profile `aei-batch score` with py-spy, every process of the run, and print where the time goes.

    python bench/profile_score.py --model-dir MODEL                 # 1,200 RAVDESS files, --runner pool
    python bench/profile_score.py --model-dir MODEL --runner ray --limit 400
    python bench/profile_score.py --raw /tmp/old.txt               # summarise a recorded profile again

py-spy samples each process of the tree (`--subprocesses`, 100 Hz, active threads only) into a raw
("collapsed stacks") file. The summary gives the share of samples per process role (driver, scoring
workers, decoder children, Ray's own processes), the functions with the most samples inclusive
(aei_batch's own functions and imports), and the leaf functions with the most samples (self time).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RAVDESS, REPO, print_facts, print_table, venv_bin  # noqa: E402

_PROC = re.compile(r'^process \d+:"(.*)"$')
_MARKER = re.compile(r'process \d+:"[^"]*"')  # a command line may itself contain ";"


def _split(stack: str) -> list[str]:
    markers = _MARKER.findall(stack)
    for k, m in enumerate(markers):
        stack = stack.replace(m, f"\x00{k}", 1)
    return [markers[int(f[1:])] if f.startswith("\x00") else f for f in stack.split(";")]


def role(cmdline: str) -> str:
    if "_child_main" in cmdline:
        return "decoder child"
    if "multiprocessing" in cmdline or "spawn_main" in cmdline:
        return "pool worker (spawned)"
    if "default_worker.py" in cmdline or cmdline.startswith("ray::"):
        return "Ray worker / actor"
    if "aei-batch" in cmdline:
        return "driver"
    return "Ray services / other"


def _frame_name(frame: str) -> str:
    name, _, where = frame.partition(" (")
    file = where.split(":")[0].rsplit("/", 1)[-1]
    return f"{name} ({file})" if file else name


def summarise(raw: Path, top: int = 15) -> None:
    by_role: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    leaf: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = _split(stack)
        procs = [m.group(1) for f in frames if (m := _PROC.match(f))]
        last = procs[-1] if procs else ""
        # a forked process (pool worker, decoder child) carries its parent's stack at fork time: keep the
        # frames after its own process marker, then drop those above its own main loop
        own = frames[max(i for i, f in enumerate(frames) if _PROC.match(f)) + 1 :] if procs else frames
        r = role(last)
        child = [i for i, f in enumerate(own) if "_child_main" in f]
        worker = [i for i, f in enumerate(own) if "_process_worker" in f]
        if child:  # a decoder child (forked: its stack starts with its worker's at fork time)
            r, own = "decoder child", own[child[-1] :]
        elif worker and r == "driver":  # a pool worker forked from the driver
            r, own = "pool worker (forked)", own[worker[-1] :]
        by_role[r] += n
        total += n
        seen = set()
        for f in own:
            name = _frame_name(f)
            if name not in seen and ("aei_batch" in f or "_find_and_load (" in name or "ray" in f):
                inclusive[f"{r}: {name}"] += n
                seen.add(name)
        if own:
            leaf[f"{r}: {_frame_name(own[-1])}"] += n
    print(f"   samples: {total} (100 per second per busy thread)")
    print_table(
        [{"role": k, "samples": v, "share": f"{v / total:.1%}"} for k, v in by_role.most_common()],
        "samples per process role",
    )
    print_table(
        [
            {"inclusive": k[:110], "samples": v, "share": f"{v / total:.1%}"}
            for k, v in inclusive.most_common(top)
        ],
        f"top {top} functions, inclusive (aei_batch, imports, Ray)",
    )
    print_table(
        [{"self": k[:100], "samples": v, "share": f"{v / total:.1%}"} for k, v in leaf.most_common(top)],
        f"top {top} leaf functions (self time)",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=RAVDESS)
    ap.add_argument("--model-dir", type=Path, help="a trained model directory (aei-batch train)")
    ap.add_argument("--runner", default="pool")
    ap.add_argument("--limit", type=int, default=None, help="score the first N files only")
    ap.add_argument("--raw", type=Path, default=None, help="summarise this recorded raw profile instead")
    ap.add_argument("--keep", type=Path, default=None, help="keep the raw profile at this path")
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    if args.raw:
        summarise(args.raw, args.top)
        return
    if args.model_dir is None:
        ap.error("--model-dir is required to record a profile")
    print_facts("profile_score")
    work = Path(tempfile.mkdtemp(prefix="aei-profile-"))
    try:
        source = args.data
        if args.limit:
            source = work / "subset"
            source.mkdir()
            for f in sorted(p for p in args.data.rglob("*") if p.suffix in (".wav", ".flac"))[: args.limit]:
                (source / f.name).symlink_to(f)
        raw = args.keep or work / "profile.txt"
        cmd = [
            venv_bin("py-spy"), "record", "--subprocesses", "-r", "100", "-f", "raw", "-o", str(raw), "--",
            venv_bin("aei-batch"), "score", str(source), "-m", str(args.model_dir), "-o", str(work / "t"),
            "--runner", args.runner, "--no-progress",
        ]  # fmt: skip
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
        tail = [ln for ln in done.stdout.splitlines() if "time" in ln or "errors" in ln]
        print("\n".join(f"   {ln}" for ln in tail))
        if done.returncode != 0:
            print(done.stderr[-3000:])
            sys.exit(done.returncode)
        summarise(raw, args.top)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
