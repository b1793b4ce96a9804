"""`aei-batch query` cannot read outside the table (issue 16, "Hostile input"), on the real DuckDB engine.

A real Iceberg table (pyiceberg, the embedded sqlite catalog `score` uses) and a real Parquet table hold one
row each; a symbolic link inside each table's folder points at a secret file outside it, and a `.tmp/`
folder in the working directory holds another. Every way of reaching them through SQL must be refused with
exit 4 and no secret in the output, while the table itself still reads.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from aei_batch.cli import app
from aei_batch.errors import ExitCode
from aei_batch.records import PREDICTIONS_SCHEMA

SECRET = "top-secret-4f1c"


def _one_row() -> pa.Table:
    values = {f.name: [None] for f in PREDICTIONS_SCHEMA}
    values.update(
        uri=["/data/a.wav"],
        run_id=["run-1"],
        run_date=[date(2026, 11, 29)],
        scored_at=[datetime(2026, 11, 29, 1, 2, 3, tzinfo=UTC)],
        status=["ok"],
        model_version=["v1"],
    )
    return pa.table(values, schema=PREDICTIONS_SCHEMA)


def _iceberg_table(out: Path) -> Path:
    from aei_batch.io.sinks.iceberg import open_table
    from aei_batch.io.tables import resolve_catalog

    table = open_table(resolve_catalog(str(out)), create=True)
    table.append(_one_row())
    return Path(table.location().removeprefix("file://"))


def _parquet_table(out: Path) -> Path:
    part = out / "run_date=2026-11-29"
    part.mkdir(parents=True)
    pq.write_table(_one_row(), part / "part-0.parquet")
    return out


@pytest.fixture(params=["iceberg", "parquet"])
def hostile(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text(SECRET)
    out = tmp_path / "table"
    root = _iceberg_table(out) if request.param == "iceberg" else _parquet_table(out)
    os.symlink(secret, root / "link.txt")  # a link to a file outside, inside the table's folder
    os.symlink(secret.parent, root / "linkdir")  # and one to a folder outside
    work = tmp_path / "work"
    (work / ".tmp").mkdir(parents=True)
    (work / ".tmp" / "x.txt").write_text(SECRET)  # DuckDB's default temp folder, relative to the cwd
    monkeypatch.chdir(work)
    return {"fmt": request.param, "out": str(out), "root": root, "secret": secret}


def _query(h: dict, sql: str, *extra: str) -> object:
    return CliRunner().invoke(
        app, ["query", sql, "-o", h["out"], "--table-format", h["fmt"], "--format", "json", *extra]
    )


def test_the_table_itself_reads(hostile: dict) -> None:
    res = _query(hostile, "SELECT uri, status FROM latest")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output) == [{"uri": "/data/a.wav", "status": "ok"}]


@pytest.mark.parametrize(
    "reader",
    [
        "SELECT content FROM read_text('{root}/link.txt')",
        "SELECT content FROM read_text('{root}/linkdir/secret.txt')",
        "SELECT content FROM read_text('{root}/*.txt')",
        "SELECT content FROM read_text('.tmp/x.txt')",
        "SELECT content FROM read_blob('.tmp/x.txt')",
        "SELECT content FROM read_text('{secret}')",
        "SELECT * FROM read_csv('{secret}')",
        "SELECT * FROM read_csv('{root}/link.txt')",
        "SELECT content FROM read_text('{root}/../outside/secret.txt')",
        "SELECT * FROM glob('{root}/*')",
    ],
)
def test_nothing_outside_the_table_is_read(hostile: dict, reader: str) -> None:
    sql = reader.format(root=hostile["root"], secret=hostile["secret"])
    res = _query(hostile, sql)
    assert res.exit_code == ExitCode.CONFIG, res.output
    assert SECRET not in res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize(
    "sql",
    [
        "PRAGMA database_list",
        "  /* comment */ pragma version",
        "ATTACH ':memory:' AS x",
        "COPY (SELECT 1) TO 'x.csv'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "RESET lock_configuration",
        "CALL pragma_version()",
        "SELECT 1; SELECT 2",
        "EXPORT DATABASE 'dump'",
    ],
)
def test_statements_other_than_select_are_refused(hostile: dict, sql: str) -> None:
    res = _query(hostile, sql)
    assert res.exit_code == ExitCode.CONFIG, res.output
    assert "Traceback" not in res.output
    assert not Path("x.csv").exists() and not Path("dump").exists()


def test_read_only_check_accepts_selects() -> None:
    from aei_batch.io.query import check_read_only

    for sql in ("SELECT 1", "with a as (select 1) select * from a", "FROM predictions", "(SELECT 1)"):
        assert check_read_only(sql) == sql


def test_csv_over_a_list_column_is_json_text(hostile: dict) -> None:
    res = _query(hostile, "SELECT uri, ['a', 'b'] AS xs, {'k': 1} AS st FROM predictions")
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(
        app,
        [
            "query",
            "SELECT uri, ['a', 'b'] AS xs, NULL::VARCHAR[] AS empty FROM predictions",
            "-o",
            hostile["out"],
            "--table-format",
            hostile["fmt"],
            "--format",
            "csv",
        ],
    )
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert lines[0] == '"uri","xs","empty"'
    assert lines[1] == '"/data/a.wav","[""a"", ""b""]",'


def test_relative_output_for_a_parquet_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _parquet_table(tmp_path / "rel" / "table")
    monkeypatch.chdir(tmp_path / "rel")
    res = CliRunner().invoke(
        app,
        ["query", "SELECT count(*) AS n FROM predictions", "-o", "table", "--table-format", "parquet"]
        + ["--format", "json"],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output) == [{"n": 1}]


def test_output_naming_a_file_is_exit_4(tmp_path: Path) -> None:
    f = tmp_path / "table.txt"
    f.write_text("not a table")
    res = CliRunner().invoke(app, ["query", "SELECT 1", "-o", str(f)])
    assert res.exit_code == ExitCode.CONFIG, res.output
    assert "is a file, not a table folder" in res.output
