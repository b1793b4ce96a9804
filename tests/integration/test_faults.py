"""Faults during a run, through the real CLI: S3 going away, a Ray worker killed, the driver killed before
the commit, and systemic misconfiguration that must fail fast with its own exit code.

Mid-run points are reached with the documented test-only hooks of aei_batch.scoring.job
(`AEI_TEST_PAUSE_AFTER_FIRST_BATCH_S`, `AEI_TEST_PAUSE_BEFORE_COMMIT_S`): the driver prints
`AEI_TEST: <point>` on stderr and waits there, and the test acts (stops SeaweedFS by PID, kills a
process by PID). Processes are only ever killed by PID, and only ones this test started.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from aei_batch.errors import ExitCode
from aei_batch.records import COL, STATUS_OK
from tests.support import media as M
from tests.support.seaweed import SeaweedS3

pytestmark = [pytest.mark.slow]

RESULTS: list[tuple[str, str]] = []  # (fault, observed outcome) for the report printed at the end


# ------------------------------------------------------------------ helpers


def cli_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", **extra}


def run_cli(*args: str, timeout: float = 240, **env: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("aei-batch")
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, timeout=timeout, env=cli_env(**env)
    )


def invoke(*args: str) -> tuple[int, str]:
    """`aei-batch ARGS` in this process (typer's CliRunner): no interpreter start, for runs around a fault."""
    from typer.testing import CliRunner

    from aei_batch.cli import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


class Running:
    """`aei-batch ARGS` started in the background; stderr lines are collected as they come."""

    def __init__(self, *args: str, **env: str) -> None:
        exe = Path(sys.executable).with_name("aei-batch")
        self.proc = subprocess.Popen(
            [str(exe), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(**env)
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)
            self.lines.put(line)

    def wait_for(self, marker: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if marker in self.lines.get(timeout=0.5):
                    return
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
        raise AssertionError(
            f"no {marker!r} from the CLI (rc={self.proc.poll()}):\n{''.join(self.stderr)[-3000:]}"
        )

    def finish(self, timeout: float = 240) -> int:
        rc = self.proc.wait(timeout=timeout)
        time.sleep(0.2)  # let the pump thread take the last lines
        return rc

    @property
    def output(self) -> str:
        return "".join(self.stderr)


def descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, cmdline) of every live descendant of `pid`, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        try:
            cmd = (
                (Path("/proc") / str(p) / "cmdline")
                .read_bytes()
                .replace(b"\0", b" ")
                .decode(errors="replace")
            )
        except OSError:
            continue
        out.append((p, cmd))
        todo.extend(children.get(p, []))
    return out


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def read_back(output: str) -> list[dict[str, Any]]:
    from aei_batch.io.sinks import read_predictions

    return read_predictions(output).to_pylist()


def assert_complete(rows: list[dict[str, Any]], uris: set[str]) -> None:
    got = [r[COL.uri] for r in rows]
    assert len(got) == len(set(got)), "duplicate rows"
    assert set(got) == uris, f"missing {uris - set(got)}, extra {set(got) - uris}"


def make_local_corpus(root: Path, n: int, seconds: float = 1.0) -> set[str]:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        path = root / f"clip-{i:03d}.wav"
        if not path.exists():  # rewriting would change the local etag (size + mtime): a new content key
            path.write_bytes(M.noise_wav_bytes(seconds=seconds, seed=i))
    return {str((root / f"clip-{i:03d}.wav").absolute()) for i in range(n)}


def upload_corpus(s3: SeaweedS3, bucket: str, n: int) -> tuple[str, set[str]]:
    client = s3.client()
    for i in range(n):
        client.put_object(
            Bucket=bucket, Key=f"in/clip-{i:03d}.wav", Body=M.noise_wav_bytes(seconds=1.0, seed=i)
        )
    return f"s3://{bucket}/in/", {f"s3://{bucket}/in/clip-{i:03d}.wav" for i in range(n)}


@pytest.fixture(scope="module", autouse=True)
def fault_report(tmp_path_factory: pytest.TempPathFactory):
    yield
    if RESULTS:
        lines = ["| fault | observed |", "|---|---|", *[f"| {f} | {o} |" for f, o in RESULTS]]
        text = "\n".join(lines)
        (tmp_path_factory.mktemp("report") / "faults.md").write_text(text + "\n")
        if os.environ.get("AEI_ROBUSTNESS_REPORT"):
            with open(os.environ["AEI_ROBUSTNESS_REPORT"], "a", encoding="utf-8") as fh:
                fh.write(text + "\n\n")
        print("\n" + text)


# ------------------------------------------------------------------ S3 outages


@pytest.mark.s3
def test_s3_outage_during_run_is_retried(
    s3_bucket: str, s3_env: SeaweedS3, tmp_path: Path, trained_model: Path
):
    """SeaweedFS stopped mid-run and started again: reads retry with backoff and the run completes."""
    source, uris = upload_corpus(s3_env, s3_bucket, 8)
    output = str(tmp_path / "table")
    run = Running(
        "score",
        source,
        "-m",
        str(trained_model),
        "-o",
        output,
        "--runner",
        "local",
        "--batch-size",
        "1",
        "--no-progress",
        AEI_TEST_PAUSE_AFTER_FIRST_BATCH_S="5",
        AEI_S3_MAX_ATTEMPTS="12",
    )
    try:
        run.wait_for("AEI_TEST: after_first_batch")
        t_stop = time.monotonic()
        s3_env.stop()
        time.sleep(max(0.0, t_stop + 5 + 2 - time.monotonic()))  # the driver resumes while S3 is still down
    finally:
        s3_env.start()
    down_s = time.monotonic() - t_stop
    rc = run.finish()
    assert rc == ExitCode.OK, run.output[-3000:]
    rows = read_back(output)
    assert_complete(rows, uris)
    assert all(r[COL.status] == STATUS_OK for r in rows)
    RESULTS.append(
        (
            f"S3 stopped mid-run for {down_s:.0f} s, then restarted",
            f"exit {rc}; {len(rows)}/{len(uris)} rows, all ok, no duplicates (reads retried)",
        )
    )


@pytest.mark.s3
def test_s3_down_fails_the_run_and_a_rerun_completes(
    s3_bucket: str, s3_env: SeaweedS3, tmp_path: Path, trained_model: Path
):
    """SeaweedFS stopped mid-run, left down: exit 8, clear message, nothing committed; a rerun completes."""
    source, uris = upload_corpus(s3_env, s3_bucket, 8)
    output = str(tmp_path / "table")
    run = Running(
        "score",
        source,
        "-m",
        str(trained_model),
        "-o",
        output,
        "--runner",
        "local",
        "--batch-size",
        "1",
        "--no-progress",
        AEI_TEST_PAUSE_AFTER_FIRST_BATCH_S="2",
        AEI_S3_MAX_ATTEMPTS="2",
    )
    try:
        run.wait_for("AEI_TEST: after_first_batch")
        s3_env.stop()
        rc = run.finish()
        committed = read_back(output)
    finally:
        s3_env.start()
    assert rc == ExitCode.STORAGE, run.output[-3000:]
    assert "storage unreachable" in run.output and "fix:" in run.output
    assert committed == [], "a failed run must commit nothing"
    again = run_cli(
        "score", source, "-m", str(trained_model), "-o", output, "--runner", "local", "--no-progress"
    )
    assert again.returncode == ExitCode.OK, again.stderr[-3000:]
    rows = read_back(output)
    assert_complete(rows, uris)
    RESULTS.append(
        (
            "S3 stopped mid-run and left down (AEI_S3_MAX_ATTEMPTS=2)",
            f"exit {rc} (STORAGE), 'storage unreachable ... fix:' on stderr, 0 rows committed",
        )
    )
    RESULTS.append(
        ("rerun after S3 is back", f"exit {again.returncode}; {len(rows)}/{len(uris)} rows, no duplicates")
    )


# ------------------------------------------------------------------ process deaths


def _run_to_first_batch(
    tmp_path: Path, trained_model: Path, runner: str, *, pause_s: float, **env: str
) -> tuple[Running, set[str], str]:
    """40 clips of 2 s scored by `runner` with 2 workers and batches of 2, started in the background and
    followed until the driver has its first batch (where it pauses `pause_s`): (run, uris, output)."""
    uris = make_local_corpus(tmp_path / "in", 40, seconds=2.0)
    output = str(tmp_path / "table")
    run = Running(
        "score",
        str(tmp_path / "in"),
        "-m",
        str(trained_model),
        "-o",
        output,
        "--runner",
        runner,
        "--workers",
        "2",
        "--batch-size",
        "2",
        "--no-progress",
        AEI_TEST_PAUSE_AFTER_FIRST_BATCH_S=f"{pause_s:g}",
        **env,
    )
    run.wait_for("AEI_TEST: after_first_batch", timeout=240)
    return run, uris, output


@pytest.mark.ray
def test_ray_worker_killed_mid_run_is_retried(tmp_path: Path, trained_model: Path) -> None:
    """SIGKILL one Ray actor (by PID) after the first batch: Ray restarts it, retries its batch."""
    run, uris, output = _run_to_first_batch(tmp_path, trained_model, "ray", pause_s=0)
    workers = [pid for pid, cmd in descendants(run.proc.pid) if "StageWorker" in cmd]
    assert workers, f"no Ray actor among {descendants(run.proc.pid)}"
    os.kill(workers[0], signal.SIGKILL)
    still_running = run.proc.poll() is None
    rc = run.finish()
    assert rc == ExitCode.OK, run.output[-3000:]
    assert still_running, "the run had finished before the kill: the test proved nothing"
    assert not alive(workers[0])
    rows = read_back(output)
    assert_complete(rows, uris)
    assert all(r[COL.status] == STATUS_OK for r in rows)
    RESULTS.append(
        (
            "Ray actor SIGKILLed after the first batch (max_task_retries=3)",
            f"exit {rc}; {len(rows)}/{len(uris)} rows, all ok, no duplicates",
        )
    )


def _pool_run(tmp_path: Path, trained_model: Path, **env: str) -> tuple[Running, set[str], str, int]:
    """A pool run paused 3 s after its first batch, one of its workers SIGKILLed during the pause.

    The driver's direct children that have a child of their own (their decoder) are the pool's workers."""
    run, uris, output = _run_to_first_batch(tmp_path, trained_model, "pool", pause_s=3, **env)
    tree = descendants(run.proc.pid)
    parents = {_ppid(pid) for pid, _ in tree}
    workers = [pid for pid, _ in tree if _ppid(pid) == run.proc.pid and pid in parents]
    assert workers, f"no pool worker among {tree}"
    os.kill(workers[0], signal.SIGKILL)
    return run, uris, output, workers[0]


def _ppid(pid: int) -> int:
    try:
        return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def test_pool_worker_killed_mid_run_is_retried(tmp_path: Path, trained_model: Path) -> None:
    """SIGKILL one pool worker (by PID) mid-run: a new pool retries the batches in flight, none twice."""
    run, uris, output, killed = _pool_run(tmp_path, trained_model)
    still_running = run.proc.poll() is None
    rc = run.finish()
    assert rc == ExitCode.OK, run.output[-3000:]
    assert still_running, "the run had finished before the kill: the test proved nothing"
    assert not alive(killed)
    assert "a pool worker died" in run.output and "retrying" in run.output
    rows = read_back(output)
    assert_complete(rows, uris)
    assert all(r[COL.status] == STATUS_OK for r in rows)
    RESULTS.append(
        (
            "pool worker SIGKILLed mid-run (AEI_POOL_MAX_RETRIES=3)",
            f"exit {rc}; batches in flight retried on new workers; {len(rows)}/{len(uris)} rows, all ok, "
            "no duplicates",
        )
    )


def test_pool_worker_death_without_retries_fails_the_run(tmp_path: Path, trained_model: Path) -> None:
    """With AEI_POOL_MAX_RETRIES=0 the same kill fails the run (exit 9), says why, and commits nothing."""
    run, _, output, _ = _pool_run(tmp_path, trained_model, AEI_POOL_MAX_RETRIES="0")
    rc = run.finish()
    assert rc == ExitCode.JOB_FAILED, run.output[-3000:]
    assert "a worker process of the pool runner died" in run.output and "AEI_POOL_MAX_RETRIES" in run.output
    assert read_back(output) == []
    RESULTS.append(
        (
            "pool worker SIGKILLed, AEI_POOL_MAX_RETRIES=0",
            f"exit {rc} (JOB_FAILED), the cause on stderr, 0 rows committed",
        )
    )


def test_driver_killed_before_commit_leaves_table_unchanged(tmp_path: Path, trained_model: Path) -> None:
    """SIGKILL the driver after all rows are staged, before the commit: table as before; a rerun completes."""
    first = make_local_corpus(tmp_path / "in", 3)
    output = str(tmp_path / "table")
    base = (
        "score",
        str(tmp_path / "in"),
        "-m",
        str(trained_model),
        "-o",
        output,
        "--runner",
        "local",
        "--no-progress",
    )
    assert invoke(*base)[0] == ExitCode.OK
    before = read_back(output)
    assert_complete(before, first)
    everything = make_local_corpus(tmp_path / "in", 6)
    run = Running(*base, AEI_TEST_PAUSE_BEFORE_COMMIT_S="120")
    run.wait_for("AEI_TEST: before_commit")
    helpers = [pid for pid, _ in descendants(run.proc.pid)]
    run.proc.send_signal(signal.SIGKILL)
    assert run.finish() == -signal.SIGKILL
    after_kill = read_back(output)
    assert sorted(map(str, after_kill), key=str) == sorted(map(str, before), key=str), "the table changed"
    deadline = time.monotonic() + 10
    while any(alive(p) for p in helpers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(p) for p in helpers), "the decoder child outlived the killed driver"
    rc, text = invoke(*base)
    assert rc == ExitCode.OK, text[-3000:]
    rows = read_back(output)
    assert_complete(rows, everything)
    RESULTS.append(
        (
            "driver SIGKILLed after rows staged, before commit",
            f"table unchanged ({len(after_kill)} rows); decoder child exited; rerun exit "
            f"{rc} with {len(rows)}/{len(everything)} rows, no duplicates",
        )
    )


# ------------------------------------------------------------------ fail fast


def _copy_model(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def _edit_card(model: Path, edit: Any) -> None:
    card = json.loads((model / "card.json").read_text())
    edit(card)
    (model / "card.json").write_text(json.dumps(card))


def _bad_models(trained_model: Path, tmp_path: Path) -> dict[str, Path]:
    missing = tmp_path / "no-such-model"
    corrupt = _copy_model(trained_model, tmp_path / "corrupt")
    (corrupt / "card.json").write_text('{"format": 1, "models": {')
    mismatch = _copy_model(trained_model, tmp_path / "mismatch")
    _edit_card(mismatch, lambda c: c["feature_set"].update(hash="0" * 16))
    tampered = _copy_model(trained_model, tmp_path / "tampered")
    card = json.loads((tampered / "card.json").read_text())
    artifact = tampered / card["models"][card["default_model"]]["file"]
    artifact.write_bytes(artifact.read_bytes() + b" ")
    return {
        "missing model directory": missing,
        "corrupt card.json": corrupt,
        "feature hash does not match (card edited)": mismatch,
        "artifact tampered (sha256 mismatch)": tampered,
    }


def test_bad_model_fails_fast_with_exit_7(tmp_path: Path, trained_model: Path) -> None:
    corpus = tmp_path / "in"
    make_local_corpus(corpus, 2)
    for what, model in _bad_models(trained_model, tmp_path).items():
        output = tmp_path / f"out-{model.name}"
        rc, text = invoke("score", str(corpus), "-m", str(model), "-o", str(output), "--runner", "local")
        assert rc == ExitCode.MODEL, (what, text[-2000:])
        assert "fix:" in text and "Traceback" not in text, (what, text)
        assert not output.exists(), f"{what}: something was written before failing"
        RESULTS.append((what, f"exit {rc} (MODEL): {_first_error_line(text)}"))


@pytest.mark.s3
def test_missing_bucket_and_wrong_credentials_fail_fast(
    s3_bucket: str, s3_env: SeaweedS3, tmp_path: Path, trained_model: Path
) -> None:
    source, _ = upload_corpus(s3_env, s3_bucket, 1)
    cases = [
        ("input bucket does not exist", ExitCode.INPUT_NOT_FOUND, "s3://no-such-bucket-aei-7/in/", {}),
        (
            "output bucket does not exist",
            ExitCode.INPUT_NOT_FOUND,
            source,
            {"out": "s3://no-such-bucket-aei-7/t"},
        ),
        ("wrong secret key", ExitCode.CREDENTIALS, source, {"AWS_SECRET_ACCESS_KEY": "wrong-" + "x" * 30}),
        ("unknown access key", ExitCode.CREDENTIALS, source, {"AWS_ACCESS_KEY_ID": "AKNOSUCHKEY000000"}),
    ]
    for what, code, src, extra in cases:
        output = extra.pop("out", str(tmp_path / f"out-{code}"))
        proc = run_cli(
            "score",
            src,
            "-m",
            str(trained_model),
            "-o",
            output,
            "--runner",
            "local",
            "--no-progress",
            AEI_S3_MAX_ATTEMPTS="2",
            **extra,
        )
        assert proc.returncode == code, (what, proc.stderr[-2000:])
        assert "fix:" in proc.stderr and "Traceback" not in proc.stderr, (what, proc.stderr)
        if not output.startswith("s3://"):
            assert not Path(output).exists(), f"{what}: something was written before failing"
        RESULTS.append(
            (what, f"exit {proc.returncode} ({ExitCode(code).name}): {_first_error_line(proc.stderr)}")
        )


def _first_error_line(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if ln.startswith("error:")), 0)
    return " ".join(lines[start : start + 2])[:200].replace("|", "/")


# ------------------------------------------------------------------ signals and processes


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.2)
    return [p for p in pids if alive(p)]


@pytest.mark.parametrize("runner", ["local", "pool", "ray"])
def test_sigterm_stops_the_run_and_every_process_within_10_s(
    runner: str, tmp_path: Path, trained_model: Path
) -> None:
    """Kubernetes stops a pod with SIGTERM: the run rolls back (nothing committed), exits 143, and neither
    workers nor decoder children nor an embedded Ray outlive it by more than 10 s; no temp folder is left."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    run, _, output = _run_to_first_batch(
        tmp_path, trained_model, runner, pause_s=120, TMPDIR=str(tmp), RAY_TMPDIR="/tmp"
    )
    tree = [pid for pid, _ in descendants(run.proc.pid)]
    assert tree, "the run had no child process: the test proves nothing"
    run.proc.send_signal(signal.SIGTERM)
    rc = run.finish(timeout=30)
    left = _wait_gone(tree, 10)
    assert rc == 128 + signal.SIGTERM, run.output[-3000:]
    assert not left, f"still running 10 s after SIGTERM: {[(p, c) for p, c in descendants(1) if p in left]}"
    assert not Path(output).exists() or not read_back(output), "a SIGTERMed run committed rows"
    assert not [p.name for p in tmp.iterdir() if p.name.startswith("aei-")], list(tmp.iterdir())
    RESULTS.append(
        (f"SIGTERM to a --runner {runner} run mid-way", f"exit {rc}, {len(tree)} child processes gone")
    )


def test_sigkill_of_the_driver_leaves_no_pool_worker_behind(tmp_path: Path, trained_model: Path) -> None:
    """SIGKILL (the OOM killer) cannot be handled: pool workers and decoder children die with the driver."""
    run, _, _ = _run_to_first_batch(tmp_path, trained_model, "pool", pause_s=120)
    tree = [pid for pid, _ in descendants(run.proc.pid)]
    assert len(tree) >= 2, tree
    run.proc.kill()
    run.finish(timeout=30)
    left = _wait_gone(tree, 10)
    assert not left, f"orphans after the driver's SIGKILL: {left}"
    RESULTS.append(
        ("SIGKILL of a --runner pool driver", f"{len(tree)} workers and decoders gone within 10 s")
    )


@pytest.mark.ray
def test_a_stale_local_ray_address_file_does_not_capture_an_embedded_run(
    tmp_path: Path, trained_model: Path
) -> None:
    """A dead local `ray start` node leaves its address in Ray's temp folder; a run that names no cluster
    starts its own embedded Ray and completes instead of attaching to the dead address and hanging."""
    import tempfile

    ray_tmp = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))  # short: Ray's socket paths have a length limit
    (ray_tmp / "ray").mkdir()
    (ray_tmp / "ray" / "ray_current_cluster").write_text("127.0.0.1:1\n")
    uris = make_local_corpus(tmp_path / "in", 4)
    out = str(tmp_path / "table")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    exe = Path(sys.executable).with_name("aei-batch")
    proc = subprocess.run(
        [str(exe), "score", str(tmp_path / "in"), "-m", str(trained_model), "-o", out, "--runner", "ray"],
        capture_output=True,
        text=True,
        timeout=180,
        env={**cli_env(), **env, "RAY_TMPDIR": str(ray_tmp)},
    )
    assert proc.returncode == ExitCode.OK, proc.stderr[-3000:]
    assert_complete(read_back(out), uris)
    RESULTS.append(("stale Ray address file, no RAY_ADDRESS", "embedded Ray started; run completed"))


def test_a_named_cluster_that_does_not_answer_fails_fast(tmp_path: Path, trained_model: Path) -> None:
    make_local_corpus(tmp_path / "in", 2)
    t0 = time.monotonic()
    proc = run_cli(
        "score", str(tmp_path / "in"), "-m", str(trained_model), "-o", str(tmp_path / "t"), "--runner", "ray",
        timeout=120, RAY_ADDRESS="127.0.0.1:1",
    )  # fmt: skip
    took = time.monotonic() - t0
    assert proc.returncode == ExitCode.STORAGE, proc.stderr[-3000:]
    assert (
        "does not answer" in proc.stderr and "RAY_ADDRESS" in proc.stderr and "Traceback" not in proc.stderr
    )
    RESULTS.append(("RAY_ADDRESS names a dead cluster", f"exit {proc.returncode} after {took:.0f} s"))


def test_a_run_killed_after_a_checkpoint_is_finished_by_rerunning_it(
    tmp_path: Path, trained_model: Path
) -> None:
    """`--checkpoint-every`: SIGKILL after the first checkpoint; the same command again scores only the files
    no checkpoint committed, and the table ends with exactly one row per file."""
    uris = make_local_corpus(tmp_path / "in", 24)
    output = str(tmp_path / "table")
    args = ["score", str(tmp_path / "in"), "-m", str(trained_model), "-o", output, "--runner", "local"]
    args += ["--batch-size", "4", "--checkpoint-every", "8", "--no-progress"]
    run = Running(*args, AEI_TEST_PAUSE_AFTER_CHECKPOINT_S="120")
    run.wait_for("AEI_TEST: after_checkpoint")
    run.proc.kill()
    run.finish(timeout=30)
    committed = read_back(output)
    assert 0 < len(committed) < len(uris), len(committed)
    again = run_cli(*args, "-v")
    assert again.returncode == ExitCode.OK, again.stderr[-3000:]
    assert "resuming 1 unfinished run" in again.stderr, again.stderr[-2000:]
    rows = read_back(output)
    assert_complete(rows, uris)
    rescored = len(uris) - len(committed)
    RESULTS.append(
        (
            "SIGKILL after the first checkpoint (--checkpoint-every 8), same command again",
            f"rerun scored {rescored} of {len(uris)} files; {len(rows)} rows, one per file",
        )
    )
