"""Ray's fixed cost with an embedded Ray and with a Ray cluster that is already running (`RAY_ADDRESS`).

    python bench/bench_ray_start.py --data DIR16 --model-dir M [--reps 3]

Times the whole `aei-batch score DIR16 -m M --runner ray` on a handful of files (one batch: the fixed cost)
three ways, alternating: the process pool, an embedded Ray (`ray.init` starts one per command), and a
local one-node Ray cluster started once here with `ray start --head --block` (2 CPUs) that every command
joins through `RAY_ADDRESS`, as on a cluster or with `ray job submit`. The head is stopped by its PID at
the end (never `ray stop`, which would stop every Ray on the machine).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, print_facts, print_table, venv_bin  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", **extra}
    env.pop("RAY_ADDRESS", None)
    env.update(extra)
    return env


def start_head(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    args = [
        venv_bin("ray"),
        "start",
        "--head",
        f"--port={port}",
        "--num-cpus=2",
        "--include-dashboard=false",
        f"--temp-dir={root}",
        "--disable-usage-stats",
        "--block",
    ]
    log = open(root / "head.log", "w")  # noqa: SIM115 - the child keeps its own descriptor
    proc = subprocess.Popen(args, env=_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(
                f"ray start exited with {proc.returncode}: {(root / 'head.log').read_text()[-2000:]}"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            time.sleep(3)  # the GCS answers before the raylet has registered the node
            return proc, address
        time.sleep(0.5)
    raise SystemExit("the Ray head did not come up in 120 s")


def stop_head(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: only the processes it started
        proc.wait(10)


def score(data: str, model: str, out: Path, runner: str, env: dict[str, str]) -> float:
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        venv_bin("aei-batch"),
        "score",
        data,
        "-m",
        model,
        "-o",
        str(out),
        "--runner",
        runner,
        "--no-progress",
    ]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=str(REPO), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="a folder of a few files (one batch)")
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    print_facts("Ray's fixed cost: pool, embedded Ray, a running Ray (RAY_ADDRESS)")
    root = Path(tempfile.mkdtemp(prefix="aei-rs-", dir="/tmp"))  # short: Ray's socket paths are capped
    head, address = start_head(root)
    walls: dict[str, list[float]] = {"pool": [], "ray (embedded)": [], "ray (RAY_ADDRESS)": []}
    try:
        for rep in range(args.reps):
            for name, runner, env in (
                ("pool", "pool", _env()),
                ("ray (embedded)", "ray", _env()),
                ("ray (RAY_ADDRESS)", "ray", _env(RAY_ADDRESS=address)),
            ):
                load = os.getloadavg()[0]
                wall = score(args.data, args.model_dir, root / "out", runner, env)
                walls[name].append(wall)
                print(f"   rep {rep + 1}: {name}: {wall:.1f} s (load {load:.1f})", flush=True)
    finally:
        stop_head(head)
    n = len(list(Path(args.data).iterdir()))
    rows = [
        {
            "how": k,
            "files": n,
            "median s": f"{statistics.median(v):.1f}",
            "each s": " / ".join(f"{x:.1f}" for x in v),
        }
        for k, v in walls.items()
    ]
    print_table(rows, f"aei-batch score over {n} files, whole command")


if __name__ == "__main__":
    main()
