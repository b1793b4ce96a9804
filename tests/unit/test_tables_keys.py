"""Row keys, incremental filtering, rerun planning, catalog settings and the read-only SQL gate."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from aei_batch.errors import ConfigError
from aei_batch.io import tables
from aei_batch.io.query import check_read_only
from aei_batch.records import COL, PREDICTIONS_SCHEMA, FileRef

DAY1, DAY2 = "2026-11-23", "2026-11-24"


def _rows(specs: list[tuple]) -> pa.Table:
    """(uri, etag, version, run_id, day, seconds, status, error_code) -> a PREDICTIONS_SCHEMA table."""
    out = []
    for uri, etag, version, run, day, sec, status, code in specs:
        row = dict.fromkeys(PREDICTIONS_SCHEMA.names)
        row.update(
            {
                COL.uri: uri,
                COL.etag: etag,
                COL.model_version: version,
                COL.run_id: run,
                COL.run_date: dt.date.fromisoformat(day),
                COL.status: status,
                COL.error_code: code,
                COL.scored_at: dt.datetime(2026, 11, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=sec),
            }
        )
        out.append(row)
    return pa.Table.from_pylist(out, schema=PREDICTIONS_SCHEMA)


def test_keys_separate_fields_and_treat_null_etag_as_empty():
    keys = tables.key_strings(pa.array(["a b+ü", "a", "a"]), pa.array(["e", None, ""]), pa.array(["v1"] * 3))
    assert keys.to_pylist() == ["a b+ü\x1fe\x1fv1", "a\x1f\x1fv1", "a\x1f\x1fv1"]
    # "ab" + "c" must not collide with "a" + "bc"
    assert (
        tables.key_strings(pa.array(["ab"]), pa.array(["c"]), pa.array(["v"])).to_pylist()
        != tables.key_strings(pa.array(["a"]), pa.array(["bc"]), pa.array(["v"])).to_pylist()
    )


def test_settled_keys_retry_transient_errors_only():
    existing = _rows(
        [
            ("ok.wav", "e", "v1", "r1", DAY1, 0, "ok", None),
            ("bad.wav", "e", "v1", "r1", DAY1, 0, "error", "DECODE_FAILED"),
            ("flaky.wav", "e", "v1", "r1", DAY1, 0, "error", "READ_FAILED"),
            ("crash.wav", "e", "v1", "r1", DAY1, 0, "error", "INTERNAL"),
        ]
    )
    settled = set(tables.settled_keys(existing).to_pylist())
    assert settled == {"ok.wav\x1fe\x1fv1", "bad.wav\x1fe\x1fv1"}
    refs = [FileRef(u, 1, "e") for u in ("ok.wav", "bad.wav", "flaky.wav", "crash.wav", "new.wav")]
    todo, skipped = tables.filter_unscored(refs, "v1", tables.settled_keys(existing))
    assert skipped == 2 and [r.uri for r in todo] == ["flaky.wav", "crash.wav", "new.wav"]
    changed = [FileRef("ok.wav", 1, "e2")]  # new ETag: new content
    assert tables.filter_unscored(changed, "v1", tables.settled_keys(existing)) == (changed, 0)
    assert tables.filter_unscored(refs[:1], "v2", tables.settled_keys(existing)) == (refs[:1], 0)  # new model


def test_rows_to_keep_merge_and_overwrite():
    existing = _rows(
        [
            ("a", "e1", "v1", "r1", DAY1, 0, "ok", None),
            ("a", "e0", "v1", "r0", DAY1, 0, "ok", None),  # history: earlier content of a
            ("b", "e1", "v1", "r1", DAY2, 0, "ok", None),
            ("c", "e1", "v1", "r1", DAY2, 0, "ok", None),
        ]
    )
    new = _rows([("a", "e1", "v1", "r2", DAY2, 9, "ok", None)])
    merged = tables.rows_to_keep(existing, new, tables.MODE_MERGE, DAY2)
    assert sorted(zip(merged[COL.uri].to_pylist(), merged[COL.etag].to_pylist(), strict=True)) == [
        ("a", "e0"),
        ("b", "e1"),
        ("c", "e1"),
    ]
    over = tables.rows_to_keep(existing, new, tables.MODE_OVERWRITE_RUN_DATE, DAY2)
    assert over[COL.uri].to_pylist() == ["a"] and over[COL.etag].to_pylist() == ["e0"]


def test_plan_rewrite_replaces_rescored_rows_and_heals_duplicates():
    existing = _rows(
        [
            ("a", "e", "v1", "r1", DAY1, 0, "ok", None),
            ("b", "e", "v1", "r1", DAY1, 0, "ok", None),
            ("c", "e", "v1", "r1", DAY1, 0, "ok", None),
            ("c", "e", "v1", "r2", DAY2, 5, "ok", None),  # a duplicate left by an interrupted export
        ]
    )
    new = _rows([("a", "e", "v1", "r3", DAY2, 9, "ok", None)])
    plan = tables.plan_rewrite(existing, new, tables.MODE_MERGE, DAY2)
    assert plan.replaced == 1 and plan.affected_dates == {DAY1}
    assert plan.keep_mask(existing) == [False, True, False, True]
    plan = tables.plan_rewrite(existing, new, tables.MODE_OVERWRITE_RUN_DATE, DAY2)
    assert plan.keep_mask(existing) == [False, True, True, False]
    assert tables.plan_rewrite(existing.slice(0, 0), new, tables.MODE_MERGE, DAY2).affected_dates == set()


def test_resolve_catalog_defaults_and_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("AEI_CATALOG_URI", raising=False)
    monkeypatch.delenv("AEI_TABLE", raising=False)
    monkeypatch.setenv("AEI_HOME", str(tmp_path / "home"))
    local = tables.resolve_catalog(str(tmp_path / "out"))
    assert local.properties["uri"] == f"sqlite:///{tmp_path / 'out' / '_catalog' / 'catalog.db'}"
    assert local.table == "aei.predictions" and not local.commit_pointer
    assert local.local_root == str(tmp_path / "out")
    assert local.table_location() == f"{tmp_path / 'out'}/aei.db/predictions"

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    s3 = tables.resolve_catalog("s3://bucket/wh/")
    assert s3.commit_pointer and s3.local_root is None
    assert s3.properties["uri"] == "sqlite:///:memory:"  # no machine-local state: the pointer is the truth
    assert (
        s3.properties["warehouse"] == "s3://bucket/wh"
        and s3.properties["s3.endpoint"] == "http://127.0.0.1:9"
    )

    block = {"uri": "postgresql://aei:hunter2@db/iceberg", "warehouse": "s3://b/wh", "table": "team.t"}
    cfg = tables.resolve_catalog("s3://ignored", catalog=block)
    assert cfg.properties["type"] == "sql" and cfg.table == "team.t" and not cfg.commit_pointer
    assert "hunter2" not in str(cfg.redacted())
    monkeypatch.setenv("AEI_CATALOG_URI", "https://rest.example/catalog")
    assert tables.resolve_catalog("x", catalog=block).properties["type"] == "rest"
    rest_block = {"type": "rest", "uri": "http://c", "warehouse": "lake"}
    rest = tables.resolve_catalog("s3://out/x", catalog=rest_block)
    assert rest.table_location() is None and rest.properties["warehouse"] == "lake"  # the server places it
    assert rest.properties["s3.endpoint"] == "http://127.0.0.1:9"
    assert tables.resolve_catalog("x", catalog_uri="sqlite:////c.db").properties["uri"] == "sqlite:////c.db"
    monkeypatch.delenv("AEI_CATALOG_URI")
    glue = tables.resolve_catalog("s3://b/wh", catalog={"type": "glue", "s3.secret-access-key": "SECRET"})
    assert glue.properties["type"] == "glue" and "uri" not in glue.properties
    assert glue.redacted()["s3.secret-access-key"] == "***"
    with pytest.raises(ConfigError, match="namespace"):
        tables.resolve_catalog("x", table="predictions")


def test_validate_mode_and_format():
    assert tables.validate_mode("merge") == "merge"
    with pytest.raises(ConfigError, match="overwrite-run-date"):
        tables.validate_mode("append")
    with pytest.raises(ConfigError, match="iceberg"):
        tables.validate_format("delta")


@pytest.mark.parametrize(
    "sql",
    ["SELECT 1", "WITH a AS (SELECT 1 AS x) SELECT * FROM a", "select * from latest where uri like '%+%'"],
)
def test_read_only_gate_accepts_selects(sql):
    assert check_read_only(sql) == sql


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM predictions",
        "INSERT INTO t VALUES (1)",
        "COPY t TO 'x.csv'",
        "CREATE TABLE t AS SELECT 1",
        "ATTACH 'x.db'",
        "SELECT 1; SELECT 2",
        "PRAGMA enable_profiling",
        "SET threads = 1",
        "SELEC 1",
    ],
)
def test_read_only_gate_refuses_everything_else(sql):
    with pytest.raises(ConfigError):
        check_read_only(sql)


def test_tables_doc_lists_every_column():
    """docs/TABLES.md documents PREDICTIONS_SCHEMA column by column; a new column needs a line there."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "TABLES.md").read_text()
    documented = set(re.findall(r"^\| `([a-z0-9_]+)`", doc, flags=re.M))
    for a, _b in re.findall(r"^\| `([a-z_]+)` … `([a-z_]+)`", doc, flags=re.M):
        prefix = a.rsplit("_", 1)[0] if a.startswith(("audio_", "video_")) else "p"
        documented |= {n for n in PREDICTIONS_SCHEMA.names if n.startswith(prefix + "_")}
    missing = [n for n in PREDICTIONS_SCHEMA.names if n not in documented]
    assert not missing, f"document these columns in docs/TABLES.md: {missing}"
