"""Shared helpers of the benchmarks: machine facts, process-tree memory sampling, tables, timing.

Memory is read from /proc (Linux), so the benchmarks need no extra package. A process tree's memory
is reported two ways: the sum of RSS (counts pages shared between processes, e.g. Ray's object store
and the shared libraries, once per process: an upper bound) and the sum of PSS (each shared page
divided among the processes that map it: what the tree really costs; needs /proc/PID/smaps_rollup).
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RAVDESS = (REPO / ".." / "shared" / "datasets" / "ravdess-speech").resolve()
PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024


# ------------------------------------------------------------------ machine facts


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def machine_facts() -> dict[str, Any]:
    """What a figure depends on: cores, CPU, memory, load, versions, time."""
    mem = "n/a"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    versions = {}
    for mod in ("ray", "librosa", "numpy", "pyarrow"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - a missing package is a fact too
            versions[mod] = "absent"
    return {
        "utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "nproc": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "cpu": cpu_model(),
        "memory": mem,
        "loadavg_1_5_15": loadavg(),
        "python": platform.python_version(),
        **versions,
    }


def print_facts(title: str) -> None:
    print(f"== {title}")
    for k, v in machine_facts().items():
        print(f"   {k:15s} {v}")
    sys.stdout.flush()


# ------------------------------------------------------------------ process-tree memory


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
            ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def tree_pids(root: int) -> list[int]:
    """`root` and all its descendants (Ray's raylet and workers are descendants of an embedded driver)."""
    kids = _children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return 0


def pss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def proc_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")[:80]
    except OSError:
        return ""


@dataclass
class MemPeaks:
    """Peaks over a run: the root (driver) alone, the rest of the tree (workers, their decoder children and,
    with Ray, Ray's own processes), the whole tree."""

    driver_rss: int = 0
    others_rss: int = 0
    tree_rss: int = 0
    tree_pss: int = 0
    max_procs: int = 0
    samples: int = 0
    per_name: dict[str, int] = field(default_factory=dict)

    def row(self) -> dict[str, str]:
        return {
            "driver RSS MiB": f"{self.driver_rss / MIB:.0f}",
            "workers+ray RSS MiB": f"{self.others_rss / MIB:.0f}",
            "tree RSS MiB": f"{self.tree_rss / MIB:.0f}",
            "tree PSS MiB": f"{self.tree_pss / MIB:.0f}",
            "procs": str(self.max_procs),
        }


class TreeSampler:
    """Sample the memory of a process tree every `interval_s` in a thread; `.peaks` holds the maxima."""

    def __init__(self, root: int | None = None, interval_s: float = 0.2, pss: bool = True) -> None:
        self.root = root if root is not None else os.getpid()
        self.interval_s = interval_s
        self.pss = pss
        self.peaks = MemPeaks()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        pids = tree_pids(self.root)
        p = self.peaks
        rss = {pid: rss_bytes(pid) for pid in pids}
        driver = rss.get(self.root, 0)
        total = sum(rss.values())
        p.driver_rss = max(p.driver_rss, driver)
        p.others_rss = max(p.others_rss, total - driver)
        p.tree_rss = max(p.tree_rss, total)
        if self.pss:
            p.tree_pss = max(p.tree_pss, sum(pss_bytes(pid) for pid in pids))
        p.max_procs = max(p.max_procs, len(pids))
        p.samples += 1


def self_peak_rss() -> int:
    """This process's own peak RSS (VmHWM), bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def run_sampled(
    cmd: Sequence[str], *, env: dict[str, str] | None = None, cwd: str | None = None, interval_s: float = 0.2
) -> tuple[float, MemPeaks, subprocess.CompletedProcess[str]]:
    """Run `cmd`, sampling its process tree's memory; (wall seconds, peaks, completed process)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with TreeSampler(proc.pid, interval_s=interval_s) as sampler:
        out, err = proc.communicate()
    wall = time.perf_counter() - t0
    done = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if proc.returncode != 0:
        print(f"!! command failed ({proc.returncode}): {' '.join(cmd)}\n{err[-3000:]}", file=sys.stderr)
    return wall, sampler.peaks, done


# ------------------------------------------------------------------ timing and output


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def median(xs: Iterable[float]) -> float:
    return statistics.median(list(xs))


def print_table(rows: list[dict[str, Any]], title: str | None = None) -> None:
    """Rows of dicts -> an aligned text table (columns in first-seen order)."""
    if title:
        print(f"\n-- {title}")
    if not rows:
        print("   (no rows)")
        return
    cols: list[str] = []
    for r in rows:
        cols.extend(c for c in r if c not in cols)
    cells = [[str(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("   " + "  ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True)))
    for row in cells:
        print("   " + "  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))
    sys.stdout.flush()


def venv_bin(name: str) -> str:
    """An executable of the running interpreter's environment (aei-batch, py-spy), else the bare name."""
    cand = Path(sys.executable).parent / name
    return str(cand) if cand.exists() else name


def single_thread_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment limiting BLAS/OpenMP pools to one thread (for one-core reference loops)."""
    env = dict(base or os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = "1"
    return env
