"""Tables on a local warehouse: the Iceberg default through the CLI, rerun modes, read-only queries, the
Parquet export, and a catalog from the --config YAML. In-process runner (Ray adds nothing here)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aei_batch.cli import app
from aei_batch.errors import ExitCode
from aei_batch.io.sinks import read_predictions
from aei_batch.io.sinks.iceberg import FAIL_BEFORE_COMMIT_ENV, InjectedCommitFailure
from aei_batch.records import COL
from aei_batch.scoring.job import ScoreOptions, run_score

pytestmark = pytest.mark.slow


@pytest.fixture
def small_corpus(synth_corpus: Path, tmp_path: Path) -> Path:
    """Eight clips of the synthetic corpus (one per emotion), in folders A (5) and B (3)."""
    wavs = sorted(synth_corpus.rglob("*-17.wav"))
    assert len(wavs) == 8
    root = tmp_path / "in"
    for i, p in enumerate(wavs):
        dest = root / ("A" if i < 5 else "B") / p.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, dest)
    return root


def _cli(*args: str) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


def _score_cli(src, model, out, *extra) -> object:
    res = _cli("score", src, "-m", model, "-o", out, "--runner", "local", "--no-progress", *extra)
    assert res.exit_code == 0, res.output
    return res


def _files(root: Path, pattern: str = "*") -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob(pattern) if p.is_file()}


def test_iceberg_is_the_default_reruns_add_nothing_and_query_prints(small_corpus, trained_model, tmp_path):
    out = tmp_path / "tbl"
    first = _score_cli(small_corpus, trained_model, out)
    assert "iceberg aei.predictions" in first.output
    assert (out / "_catalog" / "catalog.db").is_file()
    data = list((out / "aei.db" / "predictions" / "data").rglob("*.parquet"))
    assert data and all(p.parent.name.startswith("run_date=") for p in data)
    assert read_predictions(str(out)).num_rows == 8

    again = _score_cli(small_corpus, trained_model, out)
    assert "replaced" in again.output and read_predictions(str(out)).num_rows == 8

    inc = _score_cli(small_corpus, trained_model, out, "--incremental")
    assert "skipped" in inc.output and read_predictions(str(out)).num_rows == 8

    res = _cli(
        "query",
        "-o",
        out,
        "--format",
        "csv",
        "SELECT predicted_emotion, count(*) AS n FROM latest GROUP BY 1 ORDER BY 1",
    )
    assert res.exit_code == 0, res.output
    parsed = list(csv.DictReader(io.StringIO(res.stdout)))
    assert sum(int(r["n"]) for r in parsed) == 8 and {"predicted_emotion", "n"} == set(parsed[0])
    res = _cli("query", "-o", out, "SELECT count(*) AS n_rows FROM predictions")
    assert res.exit_code == 0 and "n_rows" in res.stdout and "8" in res.stdout


def test_overwrite_run_date_replaces_the_day(small_corpus, trained_model, tmp_path):
    out = tmp_path / "tbl"
    _score_cli(small_corpus / "A", trained_model, out)
    _score_cli(small_corpus / "B", trained_model, out)
    assert read_predictions(str(out)).num_rows == 8
    _score_cli(small_corpus / "B", trained_model, out, "--mode", "overwrite-run-date")
    rows = read_predictions(str(out))
    assert rows.num_rows == 3 and all("/B/" in u for u in rows[COL.uri].to_pylist())
    res = _cli(
        "score",
        small_corpus,
        "-m",
        trained_model,
        "-o",
        out,
        "--runner",
        "local",
        "--mode",
        "overwrite-run-date",
        "--incremental",
    )
    assert res.exit_code == ExitCode.CONFIG and "incremental" in res.output
    res = _cli("score", small_corpus, "-m", trained_model, "-o", out, "--format", "delta")
    assert res.exit_code == ExitCode.CONFIG and "iceberg" in res.output


def test_crash_before_commit_leaves_the_table_unchanged(small_corpus, trained_model, tmp_path, monkeypatch):
    out = str(tmp_path / "tbl")
    opts = {"model_dir": str(trained_model), "output": out, "runner": "local", "progress": False}
    run_score(ScoreOptions(source=str(small_corpus / "A"), **opts))
    meta = tmp_path / "tbl" / "aei.db" / "predictions" / "metadata"
    before = _files(meta, "*.metadata.json")
    monkeypatch.setenv(FAIL_BEFORE_COMMIT_ENV, "1")
    with pytest.raises(InjectedCommitFailure):
        run_score(ScoreOptions(source=str(small_corpus), **opts))
    monkeypatch.delenv(FAIL_BEFORE_COMMIT_ENV)
    assert _files(meta, "*.metadata.json") == before  # no new table version (unreferenced manifests only)
    assert read_predictions(out).num_rows == 5


def test_query_cannot_write(small_corpus, trained_model, tmp_path):
    out = tmp_path / "tbl"
    _score_cli(small_corpus / "B", trained_model, out)
    before = _files(out)
    data_dir = out / "aei.db" / "predictions" / "data"
    attempts = [
        "DELETE FROM predictions",
        "DROP VIEW predictions",
        f"COPY (SELECT 1 AS x) TO '{data_dir}/evil.parquet'",
        f"ATTACH '{out}/evil.db' AS evil",
        "SELECT 1; SELECT 2",
        "SET enable_external_access = true",
    ]
    for sql in attempts:
        res = _cli("query", "-o", out, sql)
        assert res.exit_code == ExitCode.CONFIG, (sql, res.output)
    res = _cli("query", "-o", out, "SELECT * FROM read_csv('/etc/passwd')")  # outside the table: refused
    assert res.exit_code == ExitCode.CONFIG and "Permission" in res.output
    res = _cli(
        "query",
        "-o",
        out,
        "SELECT count(*) FROM duckdb_settings() WHERE name = 'lock_configuration' AND value = 'true'",
    )
    assert res.exit_code == 0 and "1" in res.stdout
    assert _files(out) == before
    res = _cli("query", "-o", tmp_path / "nothing-here", "SELECT 1")
    assert res.exit_code == ExitCode.INPUT_NOT_FOUND


def test_parquet_export_reruns_do_not_duplicate(small_corpus, trained_model, tmp_path):
    out = tmp_path / "pq"
    _score_cli(small_corpus / "A", trained_model, out, "--format", "parquet")
    _score_cli(small_corpus, trained_model, out, "--format", "parquet")
    _score_cli(small_corpus, trained_model, out, "--format", "parquet")
    rows = read_predictions(str(out), "parquet")
    assert rows.num_rows == 8 and len(set(rows[COL.uri].to_pylist())) == 8
    parts = list(out.glob("run_date=*/*.parquet"))
    assert len(parts) == 1  # the day's partition was rewritten as one file
    inc = _score_cli(small_corpus, trained_model, out, "--format", "parquet", "--incremental")
    assert "skipped" in inc.output and read_predictions(str(out), "parquet").num_rows == 8
    res = _cli(
        "query",
        "-o",
        out,
        "--table-format",
        "parquet",
        "--format",
        "json",
        "SELECT count(*) AS n, count(DISTINCT run_date) AS days FROM predictions",
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == [{"n": 8, "days": 1}]


def test_catalog_and_table_from_config(small_corpus, trained_model, tmp_path):
    cfg = tmp_path / "job.yaml"
    cfg.write_text(
        f"source: {small_corpus / 'B'}\nmodel_dir: {trained_model}\noutput: {tmp_path / 'unused'}\n"
        f"runner: local\ntable: team.emotions\n"
        f"catalog:\n  uri: sqlite:///{tmp_path / 'cat' / 'c.db'}\n  warehouse: {tmp_path / 'wh'}\n"
    )
    res = _cli("score", "--config", cfg, "--no-progress")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "cat" / "c.db").is_file() and (tmp_path / "wh" / "team.db" / "emotions").is_dir()
    res = _cli("query", "--config", cfg, "--format", "json", "SELECT count(*) AS n FROM latest")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == [{"n": 3}]
