"""Exactly-once table commits on real catalogs, driven from real processes (tests/support/commit_worker.py).

Three catalogs: SeaweedFS's Iceberg REST catalog (`rest`), the embedded commit pointer of an s3:// output
(`pointer`, each process with its own empty AEI_HOME, as fresh pods) and the sqlite catalog of a local
folder (`local`). Cases: two concurrent first runs over the same files (one row per key, segments too);
a commit killed at each step (the table equals the last committed state for a fresh process); an
interrupted run resumed from its checkpoints; broken state failing fast with an exit code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow.compute as pc
import pytest
from typer.testing import CliRunner

from aei_batch.cli import app
from aei_batch.errors import ConfigError, CredentialsError, ExitCode, StorageError
from aei_batch.io import tables
from aei_batch.io.sinks import pointer, read_predictions
from aei_batch.io.sinks.iceberg import KILL_AT_ENV, open_table, unfinished_runs
from aei_batch.io.sinks.segments import read_segments
from aei_batch.records import COL

pytestmark = [pytest.mark.s3]

REPO = Path(__file__).resolve().parents[2]


def _worker(spec: dict, env: dict[str, str], home: Path, **extra_env: str) -> subprocess.Popen[str]:
    home.mkdir(parents=True, exist_ok=True)  # also its TMPDIR: a killed worker's staging stays in tmp_path
    full = {
        **os.environ,
        **env,
        "AEI_HOME": str(home),
        "TMPDIR": str(home),
        "PYTHONPATH": str(REPO),
        **extra_env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.commit_worker", json.dumps(spec)],
        env=full,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 240) -> tuple[int, dict, str]:
    out, err = proc.communicate(timeout=timeout)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    return proc.returncode, (json.loads(lines[-1]) if lines else {}), err


@pytest.fixture(params=["rest", "pointer", "local"])
def target(request, iceberg_server, tmp_path, monkeypatch):
    """(output, catalog block, env) of a fresh table on one of the three catalogs."""
    env = iceberg_server.env()
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AEI_HOME", str(tmp_path / "home-test"))
    monkeypatch.delenv(KILL_AT_ENV, raising=False)
    ns = f"t{uuid.uuid4().hex[:10]}"
    if request.param == "rest":
        return "s3://unused/x", iceberg_server.catalog_properties(), env, f"{ns}.predictions"
    if request.param == "pointer":
        bucket = iceberg_server.create_bucket(f"wh-{uuid.uuid4().hex[:12]}")
        return f"s3://{bucket}/warehouse", None, env, f"{ns}.predictions"
    return str(tmp_path / "out"), None, env, f"{ns}.predictions"


def _settings(output: str, catalog: dict | None, ident: str) -> tables.CatalogSettings:
    return tables.resolve_catalog(output, catalog=catalog, table=ident)


def _spec(output, catalog, ident, run_id, **kw) -> dict:
    cat = dict(catalog or {})
    cat["table"] = ident
    return {"output": output, "catalog": cat, "run_id": run_id, **kw}


def test_two_concurrent_first_runs_leave_one_row_per_key(target, tmp_path):
    output, catalog, env, ident = target
    barrier = tmp_path / "go"
    procs = [
        _worker(
            _spec(output, catalog, ident, run, keys=30, chunks=2, segments=True, barrier=str(barrier)),
            env,
            tmp_path / f"home-{run}",
        )
        for run in ("run-a", "run-b")
    ]
    barrier.touch()
    results = [_finish(p) for p in procs]
    for rc, _out, err in results:
        assert rc == 0, err[-3000:]
    settings = _settings(output, catalog, ident)
    rows = read_predictions(output, catalog=settings)
    keys = tables.table_keys(rows)
    assert rows.num_rows == 30 and len(pc.unique(keys)) == 30  # one row per (uri, etag, model_version)
    segs = read_segments(output, catalog=settings, latest=False)
    per_uri = segs.group_by(COL.uri).aggregate([(COL.run_id, "count_distinct"), (COL.run_id, "count")])
    assert segs.num_rows == 60 and set(per_uri[f"{COL.run_id}_count_distinct"].to_pylist()) == {1}
    assert unfinished_runs(open_table(settings, create=False)) == []


@pytest.mark.parametrize("step", ["staged", "catalog", "published"])
def test_a_commit_killed_at_each_step(target, tmp_path, step):
    output, catalog, env, ident = target
    if step == "catalog" and (catalog is not None or not output.startswith("s3://")):
        pytest.skip(
            "the catalog step exists for commit-pointer tables only (REST/sqlite commits are one step)"
        )
    rc, _, err = _finish(_worker(_spec(output, catalog, ident, "base", keys=10), env, tmp_path / "h1"))
    assert rc == 0, err[-3000:]
    killed = _worker(
        _spec(output, catalog, ident, "killed", keys=10, start=5), env, tmp_path / "h2", **{KILL_AT_ENV: step}
    )
    rc, _, err = _finish(killed)
    assert rc == -9, err[-3000:]
    # a fresh process (new AEI_HOME) reads the last committed state
    probe = _worker(_spec(output, catalog, ident, "probe", keys=0), env, tmp_path / "h3")
    assert _finish(probe)[0] == 0
    rows = read_predictions(output, catalog=_settings(output, catalog, ident))
    runs = sorted(set(rows[COL.run_id].to_pylist()))
    if step == "published":
        assert rows.num_rows == 15 and runs == ["base", "killed"]
    else:
        assert rows.num_rows == 10 and runs == ["base"]
    # and the next run commits on top of it, one row per key
    rc, _, err = _finish(_worker(_spec(output, catalog, ident, "next", keys=20), env, tmp_path / "h4"))
    assert rc == 0, err[-3000:]
    rows = read_predictions(output, catalog=_settings(output, catalog, ident))
    assert rows.num_rows == 20 and set(rows[COL.run_id].to_pylist()) == {"next"}


def test_interrupted_run_resumes_from_its_checkpoints(target, tmp_path):
    output, catalog, env, ident = target
    first = _spec(
        output, catalog, ident, "first", keys=30, chunks=3, stop_before_final=True, resume_match="nightly"
    )
    rc, out, err = _finish(_worker(first, env, tmp_path / "h1"))
    assert rc == 0 and out["checkpoints"] == 2, err[-3000:]
    settings = _settings(output, catalog, ident)
    assert unfinished_runs(open_table(settings, create=False), {"aei.command": "nightly"}) == ["first"]
    assert unfinished_runs(open_table(settings, create=False), {"aei.command": "other"}) == []
    again = _spec(output, catalog, ident, "again", keys=30, resume_match="nightly")
    rc, out, err = _finish(_worker(again, env, tmp_path / "h2"))
    assert rc == 0, err[-3000:]
    assert (
        out["unfinished"] == ["first"] and out["skipped"] == 20 and out["rows"] == 10
    )  # scored only the rest
    rows = read_predictions(output, catalog=settings)
    assert rows.num_rows == 30 and len(pc.unique(tables.table_keys(rows))) == 30
    assert unfinished_runs(open_table(settings, create=False)) == []  # the rerun marked "first" complete


def test_copied_moved_or_wiped_local_output_fails_fast(iceberg_server, tmp_path, monkeypatch):
    out = tmp_path / "out"
    rc, _, err = _finish(_worker(_spec(str(out), None, "aei.predictions", "r1", keys=5), {}, tmp_path / "h"))
    assert rc == 0, err[-3000:]
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    before = sorted(p.name for p in (out / "aei.db" / "predictions" / "metadata").iterdir())
    with pytest.raises(ConfigError, match="copied or moved"):
        tables_settings = tables.resolve_catalog(str(copy))
        open_table(tables_settings, create=True)
    res = CliRunner().invoke(app, ["query", "-o", str(copy), "SELECT count(*) FROM predictions"])
    assert (
        res.exit_code == ExitCode.CONFIG and "copied or moved" in res.output and "Traceback" not in res.output
    )
    assert sorted(p.name for p in (out / "aei.db" / "predictions" / "metadata").iterdir()) == before
    moved = tmp_path / "moved"
    out.rename(moved)
    res = CliRunner().invoke(app, ["query", "-o", str(moved), "SELECT count(*) FROM predictions"])
    assert res.exit_code == ExitCode.STORAGE and "moved" in res.output and "Traceback" not in res.output
    shutil.rmtree(copy / "aei.db")  # a wiped warehouse under a surviving catalog
    shutil.rmtree(copy / "_catalog")  # ... and the catalog too: a new table starts cleanly
    assert read_predictions(str(copy)).num_rows == 0
    shutil.rmtree(moved / "_catalog")  # data without its catalog: refused, never silently emptied
    with pytest.raises(StorageError, match="does not know"):
        open_table(tables.resolve_catalog(str(moved)), create=True)


def test_wrong_catalog_secret_and_legacy_metadata_fail_with_exit_codes(iceberg_server, tmp_path, monkeypatch):
    for k, v in iceberg_server.env().items():
        monkeypatch.setenv(k, v)
    bad = tables.resolve_catalog("s3://x/y", catalog=iceberg_server.catalog_properties(secret_key="wrong"))
    with pytest.raises(CredentialsError) as info:
        open_table(bad, create=True)
    assert info.value.exit_code == ExitCode.CREDENTIALS and "wrong" not in str(info.value)
    # a table written before the pointer existed: metadata files, no pointer -> exit 8, then adopt once
    bucket = iceberg_server.create_bucket(f"legacy-{uuid.uuid4().hex[:10]}")
    out = f"s3://{bucket}/wh"
    settings = tables.resolve_catalog(out)
    table = open_table(settings, create=True)
    loc = table.location()
    committed = table.metadata_location
    bk, key = pointer.pointer_uri(loc)[len("s3://") :].split("/", 1)
    iceberg_server.client().delete_object(Bucket=bk, Key=key)
    with pytest.raises(StorageError, match="no commit pointer") as info:
        open_table(settings, create=False)
    assert info.value.exit_code == ExitCode.STORAGE
    monkeypatch.setenv(pointer.ADOPT_ENV, committed)
    assert open_table(settings, create=False).metadata_location == committed
    monkeypatch.delenv(pointer.ADOPT_ENV)
    assert pointer.committed_metadata(loc) == committed


@pytest.mark.slow
@pytest.mark.parametrize("where", ["rest", "local"])
def test_two_parallel_score_commands_leave_one_row_per_file(
    where, iceberg_server, synth_corpus, trained_model, tmp_path, monkeypatch
):
    """The real CLI, twice at once over the same 8 files into one table (`--runner local`)."""
    for k, v in iceberg_server.env().items():
        monkeypatch.setenv(k, v)
    corpus = tmp_path / "in"
    corpus.mkdir()
    for p in sorted(synth_corpus.rglob("*-18.wav")):
        shutil.copy(p, corpus / p.name)
    out = tmp_path / "out"
    config = tmp_path / "job.yaml"
    ident = f"cli{uuid.uuid4().hex[:8]}.predictions"
    block = {"table": ident, "catalog": iceberg_server.catalog_properties()} if where == "rest" else {}
    config.write_text(json.dumps({"table": ident, **block}))  # JSON is YAML
    exe = Path(sys.executable).with_name("aei-batch")
    args = [str(exe), "score", str(corpus), "-m", str(trained_model), "-o", str(out), "-c", str(config)]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    procs = [
        subprocess.Popen(
            [*args, "--runner", "local", "--no-progress"], env=env, text=True, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(e[-2000:] for e in errs)
    settings = tables.resolve_catalog(str(out), catalog=block.get("catalog"), table=ident)
    rows = read_predictions(str(out), catalog=settings)
    assert rows.num_rows == 8 and len(pc.unique(tables.table_keys(rows))) == 8
    assert "Traceback" not in "".join(errs)


def test_overwrite_run_date_with_checkpoints_keeps_the_runs_own_rows(tmp_path, monkeypatch):
    """A rescore of a day that checkpoints: each commit drops other runs' rows of the day, never its own."""
    from tests.support import commit_worker

    monkeypatch.delenv(KILL_AT_ENV, raising=False)
    out = str(tmp_path / "out")
    commit_worker.main({"output": out, "run_id": "old", "keys": 12, "start": 100, "segments": True})
    commit_worker.main({"output": out, "run_id": "old2", "keys": 5, "start": 200, "run_date": "2026-11-28"})
    res = commit_worker.main(
        {
            "output": out,
            "run_id": "day",
            "keys": 9,
            "chunks": 3,
            "mode": "overwrite-run-date",
            "segments": True,
        }
    )
    assert res["checkpoints"] == 2
    rows = read_predictions(out)
    by_run = rows.group_by(COL.run_id).aggregate([(COL.uri, "count")]).to_pylist()
    assert {r[COL.run_id]: r[f"{COL.uri}_count"] for r in by_run} == {"day": 9, "old2": 5}
    segs = read_segments(out, latest=False)
    assert set(segs[COL.run_id].to_pylist()) == {"day"} and segs.num_rows == 18


def test_a_failed_checkpoint_is_retried_with_its_rows_and_never_twice(tmp_path, monkeypatch):
    from aei_batch.io.sinks.iceberg import FAIL_BEFORE_COMMIT_ENV, IcebergSink, InjectedCommitFailure
    from tests.support.commit_worker import prediction_rows

    monkeypatch.delenv(KILL_AT_ENV, raising=False)
    settings = tables.resolve_catalog(str(tmp_path / "out"))
    sink = IcebergSink(settings, "r1", "2026-11-29")
    sink.write(prediction_rows("r1", list(range(4)), "2026-11-29"))
    monkeypatch.setenv(FAIL_BEFORE_COMMIT_ENV, "1")
    with pytest.raises(InjectedCommitFailure):
        sink.checkpoint()
    monkeypatch.delenv(FAIL_BEFORE_COMMIT_ENV)
    assert read_predictions(str(tmp_path / "out")).num_rows == 0
    sink.write(prediction_rows("r1", list(range(4, 6)), "2026-11-29"))
    assert sink.checkpoint() == 1 and read_predictions(str(tmp_path / "out")).num_rows == 6
    sink._seq = 0  # as if the landed checkpoint had been reported as failed: the retry finds it, adds nothing
    sink.write(prediction_rows("r1", list(range(4)), "2026-11-29"))
    assert sink.checkpoint() == 1
    sink.commit({"aei.rows": "6"})
    rows = read_predictions(str(tmp_path / "out"))
    assert rows.num_rows == 6 and unfinished_runs(sink.table) == []
    assert sink.table.current_snapshot().summary["aei.rows"] == "6"
