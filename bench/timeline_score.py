"""Where one `aei-batch score` run spends its wall time: the driver's phases and the CPU of every process.

The command runs in a child process whose driver prints a timestamp as it enters and leaves each phase
(listing, the model load, Ray's start, opening the table, the first batch back, the commit, Ray's stop,
the interpreter's exit); meanwhile this process samples the CPU time of every process of the tree from
/proc and adds it up per role (driver, pool workers, decoder children, Ray actors and Ray's own
services) in time slices. Idle cores show up as slices whose CPU adds up to less than the core count:
that is start-up or shut-down nobody overlaps.

    python bench/timeline_score.py -- ../shared/datasets/ravdess-speech -m MODEL -o /tmp/out
    python bench/timeline_score.py --slice 0.25 -- DATA -m MODEL -o /tmp/out --runner ray

Everything after `--` goes to `aei-batch score` (add `--no-progress` or not, as you like; the output
table folder is removed first when it is under the system's temporary folder).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, print_facts, print_table  # noqa: E402

HZ = os.sysconf("SC_CLK_TCK")
MARK = "PHASE "


# ------------------------------------------------------------------ inside the measured command


def inner(argv: list[str]) -> None:
    """Run the CLI with the driver's phases wrapped so that each prints its start and end."""
    import atexit
    import functools

    t0 = time.perf_counter()

    def mark(what: str) -> None:
        sys.stderr.write(f"{MARK}{time.perf_counter() - t0:.3f} {what}\n")
        sys.stderr.flush()

    import aei_batch.models.loader as loader
    import aei_batch.scoring.job as pipeline

    def wrap(mod: object, name: str) -> None:
        fn = getattr(mod, name)

        @functools.wraps(fn)
        def timed(*a: object, **k: object) -> object:
            mark(f"> {name}")
            try:
                return fn(*a, **k)
            finally:
                mark(f"< {name}")

        setattr(mod, name, timed)

    for name in ("list_refs", "_open_sink", "_incremental"):
        wrap(pipeline, name)
    wrap(loader, "load_model")
    import aei_batch.runtime.ray_backend as ray_runner

    for name in ("ensure_ray", "shutdown_owned"):
        wrap(ray_runner, name)
    open_sink = pipeline._open_sink

    def open_timed(*a: object, **k: object) -> object:
        sink = open_sink(*a, **k)
        commit = sink.commit  # type: ignore[attr-defined]

        def commit_timed() -> object:
            mark("> commit")
            try:
                return commit()
            finally:
                mark("< commit")

        sink.commit = commit_timed  # type: ignore[attr-defined]
        return sink

    pipeline._open_sink = open_timed  # type: ignore[assignment]
    add = pipeline._Counts.add
    seen = [False]

    def add_timed(self: object, out: object) -> None:
        if not seen[0]:
            seen[0] = True
            mark("first batch back")
        add(self, out)  # type: ignore[arg-type]

    pipeline._Counts.add = add_timed  # type: ignore[method-assign]
    wrap(pipeline, "_finish_pending")
    atexit.register(lambda: mark("exit handlers"))  # registered first: runs last
    from aei_batch.cli import app

    mark("command imported")
    sys.argv = ["aei-batch", "score", *argv]
    app()


# ------------------------------------------------------------------ outside: sampling the process tree


def _stat(pid: int) -> tuple[int, float]:
    """(parent pid, CPU seconds so far) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / HZ


def _tree(root: int) -> dict[int, int]:
    """pid -> parent pid for `root` and its descendants."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent[int(entry)] = _stat(int(entry))[0]
            except (OSError, IndexError, ValueError):
                continue
    out, todo = {root: 0}, [root]
    kids = collections.defaultdict(list)
    for pid, ppid in parent.items():
        kids[ppid].append(pid)
    while todo:
        for k in kids.get(todo.pop(), []):
            out[k] = parent[k]
            todo.append(k)
    return out


def _role(pid: int, ppid: int, root: int) -> str:
    if pid == root:
        return "driver"
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    cmd = b" ".join(argv).decode(errors="replace")
    exe = Path(cmd.split(" ", 1)[0]).name  # Ray's binaries rewrite their argv into one string
    if exe in ("gcs_server", "raylet"):  # before the rest: the raylet's arguments name the others
        return "ray gcs" if exe == "gcs_server" else "raylet"
    if "_child_main" in cmd:
        return "decoder"
    if cmd.startswith("ray::") or "default_worker.py" in cmd:  # actors (titled ray::Class) and idle workers
        return "ray::IDLE" if "IDLE" in cmd else "ray actors"
    for key, role in (
        ("dashboard/agent.py", "ray agents"),
        ("runtime_env/agent", "ray agents"),
        ("dashboard/dashboard.py", "ray dashboard"),
        ("log_monitor.py", "ray monitors"),
        ("monitor.py", "ray monitors"),
    ):
        if key in cmd:
            return role
    return "pool workers" if ppid == root else "decoder"  # forked: the same command line as their parent


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--inner":
        inner(sys.argv[2:])
        return
    argv = sys.argv[1:]
    rest = argv[argv.index("--") + 1 :] if "--" in argv else []
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slice", type=float, default=0.5, help="seconds per row of the CPU table")
    args = ap.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if not rest:
        ap.error("give the `aei-batch score` arguments after --")
    if "-o" in rest or "--output" in rest:
        out = Path(rest[rest.index("-o" if "-o" in rest else "--output") + 1]).resolve()
        if out.is_relative_to(Path(tempfile.gettempdir()).resolve()):
            shutil.rmtree(out, ignore_errors=True)
    print_facts("timeline_score")
    cmd = [sys.executable, __file__, "--inner", *rest]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last: dict[int, float] = {}
    roles: dict[int, str] = {}
    slices: dict[int, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    while proc.poll() is None:
        now = time.perf_counter() - t0
        for pid, ppid in _tree(proc.pid).items():
            try:
                cpu = _stat(pid)[1]
            except (OSError, IndexError, ValueError):
                continue
            role = roles.get(pid) or roles.setdefault(pid, _role(pid, ppid, proc.pid))
            slices[int(now / args.slice)][role] += cpu - last.get(pid, 0.0)
            last[pid] = cpu
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    stdout, stderr = proc.communicate()
    phases = [line[len(MARK) :].split(" ", 1) for line in stderr.splitlines() if line.startswith(MARK)]
    print_table(
        [{"t s": t, "driver": what} for t, what in phases], "the driver's phases (seconds from its start)"
    )
    order = sorted({r for c in slices.values() for r in c}, key=lambda r: -sum(c[r] for c in slices.values()))
    rows = []
    for i in range(max(slices) + 1 if slices else 0):
        row = {"from s": f"{i * args.slice:.1f}"}
        row.update({r: f"{slices[i][r]:.2f}" if slices[i][r] >= 0.005 else "" for r in order})
        row["all"] = f"{sum(slices[i].values()):.2f}"
        rows.append(row)
    print_table(
        rows,
        f"CPU seconds per {args.slice:g} s slice, by process role (a full machine: {os.cpu_count()} x slice)",
    )
    totals = {r: f"{sum(c[r] for c in slices.values()):.2f}" for r in order}
    print_table([totals], "CPU seconds over the whole run")
    print(f"   wall {wall:.2f} s, exit code {proc.returncode}")
    if proc.returncode:
        print(stderr[-2000:])
    summary = [line for line in stdout.splitlines() if "time" in line or "files" in line]
    print("\n".join(summary[:4]))


if __name__ == "__main__":
    main()
