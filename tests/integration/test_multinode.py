"""A real two-node Ray cluster on loopback, jobs submitted through `aei-batch submit` (Ray Jobs API).

The head and a second node are separate `ray start --block` processes (1 CPU each), started from this
venv and stopped by PID (SIGTERM, then wait) even when a test fails; never `ray stop`. They talk over
127.0.0.1 (GCS and dashboard bound there); Ray registers both nodes under the machine's own IP, since it
replaces a loopback node address on purpose. The scoring job must run ScoreStage actors on both nodes,
and the table must hold exactly one row per input file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.ray, pytest.mark.slow]

VENV_BIN = Path(sys.executable).parent
START_TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class TwoNodeCluster:
    """Addresses and processes of the test cluster."""

    gcs_address: str
    dashboard: str
    env: dict[str, str]
    root: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    def log_tail(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.root.glob("*.log")))


def _node_env() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"):
        env.pop(key, None)
    env.update(
        RAY_AUTH_MODE="disabled",
        RAY_USAGE_STATS_ENABLED="0",
        RAY_DISABLE_DOCKER_CPU_WARNING="1",
        RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="5",  # SIGTERM: drain briefly (default 30 s)
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
    )  # the job's `python` is this venv's
    return env


def _start_node(root: Path, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
    common = [
        "--num-cpus=1",
        "--object-store-memory=100000000",
        f"--dashboard-agent-listen-port={_free_port()}",
        f"--temp-dir={root / name}",
        "--disable-usage-stats",
        "--block",
    ]
    with open(root / f"{name}.log", "w") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [str(VENV_BIN / "ray"), "start", *args, *common],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _alive_nodes(dashboard: str) -> list[str]:
    from ray.util.state import list_nodes

    return [
        n.node_id for n in list_nodes(address=dashboard, raise_on_missing_output=False) if n.state == "ALIVE"
    ]


def _wait_for_nodes(cluster: TwoNodeCluster, count: int) -> list[str]:
    deadline = time.monotonic() + START_TIMEOUT_S
    nodes: list[str] = []
    while time.monotonic() < deadline:
        for p in cluster.procs:
            if p.poll() is not None:
                raise RuntimeError(f"ray start exited with {p.returncode}\n{cluster.log_tail()}")
        with contextlib.suppress(Exception):  # the dashboard is not up yet
            nodes = _alive_nodes(cluster.dashboard)
            if len(nodes) >= count:
                return nodes
        time.sleep(1)
    raise TimeoutError(f"{len(nodes)} of {count} Ray nodes after {START_TIMEOUT_S} s\n{cluster.log_tail()}")


def _stop(proc: subprocess.Popen, timeout_s: float = 60) -> None:
    """SIGTERM one `ray start --block` (it stops the processes it started), wait; kill its group if stuck."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # its own session (start_new_session): only our processes
        proc.wait(10)


@pytest.fixture(scope="module")
def cluster() -> Iterator[TwoNodeCluster]:
    """Head (1 CPU, dashboard) + a second node (1 CPU) as separate processes; stopped by PID afterwards."""
    root = Path(
        tempfile.mkdtemp(prefix="aei-ray-", dir="/tmp")
    )  # short: Ray's socket paths have a length cap
    env = _node_env()
    port, dash_port = _free_port(), _free_port()
    c = TwoNodeCluster(
        gcs_address=f"127.0.0.1:{port}", dashboard=f"http://127.0.0.1:{dash_port}", env=env, root=root
    )
    try:
        c.procs.append(
            _start_node(
                root,
                "head",
                [
                    "--head",
                    f"--port={port}",
                    "--include-dashboard=true",
                    "--dashboard-host=127.0.0.1",
                    f"--dashboard-port={dash_port}",
                    f"--ray-client-server-port={_free_port()}",
                ],
                env,
            )
        )
        _wait_for_nodes(c, 1)
        c.procs.append(_start_node(root, "worker", [f"--address={c.gcs_address}"], env))
        _wait_for_nodes(c, 2)
        yield c
    finally:
        for proc in reversed(c.procs):  # the second node first: it drains through the head's GCS
            _stop(proc)
        shutil.rmtree(root, ignore_errors=True)


def _submit(cluster: TwoNodeCluster, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    cmd = [str(VENV_BIN / "aei-batch"), "submit", *args]
    return subprocess.run(
        cmd,
        env=cluster.env | {"RAY_ADDRESS": cluster.dashboard},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _submission_id(stderr: str) -> str:
    """The id `aei-batch submit` printed ("submitted <id> to <address>")."""
    line = next(ln for ln in stderr.splitlines() if ln.startswith("submitted "))
    return line.split()[1]


def _score_tasks_by_node(dashboard: str, submission_id: str) -> Counter[str]:
    """Finished ScoreStage actor tasks of one job, per node id, from Ray's own task records (state API)."""
    from ray.job_submission import JobSubmissionClient
    from ray.util.state import list_tasks

    job_id = JobSubmissionClient(dashboard).get_job_info(submission_id).job_id
    tasks = list_tasks(
        address=dashboard,
        filters=[("job_id", "=", job_id), ("type", "=", "ACTOR_TASK")],
        detail=True,
        limit=10_000,
        raise_on_missing_output=False,
    )
    return Counter(t.node_id for t in tasks if t.state == "FINISHED" and "ScoreStage" in (t.name or ""))


def test_score_job_runs_on_both_nodes(
    cluster: TwoNodeCluster, synth_corpus: Path, trained_model: Path, tmp_path: Path
) -> None:
    import duckdb

    from aei_batch.io.storage import list_inputs

    out = tmp_path / "table"
    listed = sorted(r.uri for r in list_inputs(str(synth_corpus)))
    config = tmp_path / "job.yaml"  # shipped inside the entrypoint (`--config /dev/stdin` here-document)
    config.write_text(
        yaml.safe_dump(
            {
                "source": str(synth_corpus),
                "model_dir": str(trained_model),
                "output": str(out),
                "format": "parquet",
            }
        )
    )
    res = _submit(cluster, "score", "--config", str(config), "--batch-size", "2", "--workers", "2")
    print(res.stderr[-1500:])
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:] + cluster.log_tail()
    assert "scored" in res.stdout  # the job's own logs (its run summary) were followed to stdout

    by_node = _score_tasks_by_node(cluster.dashboard, _submission_id(res.stderr))
    alive = _alive_nodes(cluster.dashboard)
    for node_id in alive:
        print(f"node {node_id}: {by_node.get(node_id, 0)} ScoreStage tasks finished")
    rows = duckdb.sql(f"select uri, status from read_parquet('{out}/**/*.parquet', hive_partitioning=false)")
    got = rows.fetchall()
    uris = sorted(u for u, _ in got)
    print(
        f"table rows {len(got)}, distinct uris {len(set(uris))}, listed files {len(listed)}, "
        f"ok rows {sum(st == 'ok' for _, st in got)}"
    )
    assert set(by_node) == set(alive) and len(alive) == 2, (by_node, alive)
    assert uris == listed  # one row per file: none lost, none duplicated
    assert all(st == "ok" for _, st in got)


def test_failed_job_exits_9(cluster: TwoNodeCluster, trained_model: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    res = _submit(
        cluster,
        "score",
        str(missing),
        "--model-dir",
        str(trained_model),
        "--output",
        str(tmp_path / "t"),
        "--format",
        "parquet",
        timeout=180,
    )
    print(res.stderr[-1500:])
    assert res.returncode == 9, res.stderr
    # 5 is the job's own exit code (INPUT_NOT_FOUND), named in the message
    assert "FAILED (job exit code 5): error: input folder not found" in res.stderr
