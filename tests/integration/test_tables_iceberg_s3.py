"""The Iceberg table on a real S3 server (SeaweedFS): source prefix and warehouse both on s3://.

One scenario, step by step, as a nightly job sees it: first run, rerun, incremental run with new files,
a changed file, queries through `aei-batch query` and DuckDB's `iceberg_scan`, a crash right before the
commit, and a fresh machine that has lost the embedded catalog.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from aei_batch.cli import app
from aei_batch.io.query import connect
from aei_batch.io.sinks import read_predictions
from aei_batch.io.sinks.iceberg import FAIL_BEFORE_COMMIT_ENV, InjectedCommitFailure, open_table
from aei_batch.io.tables import resolve_catalog
from aei_batch.records import COL
from aei_batch.scoring.job import ScoreOptions, run_score
from tests.support import media

pytestmark = [pytest.mark.s3, pytest.mark.slow]

# Keys that need URL-encoding somewhere on the way: spaces, unicode, '+'.
ODD_DIRS = ("with space", "ünïcødé", "plus+sign")


def _upload_corpus(client, bucket: str, wavs, prefix: str = "incoming") -> list[str]:
    uris = []
    for i, path in enumerate(wavs):
        key = f"{prefix}/{ODD_DIRS[i % len(ODD_DIRS)]}/{path.name}"
        client.upload_file(str(path), bucket, key)
        uris.append(f"s3://{bucket}/{key}")
    return uris


def _score(source: str, model, warehouse: str, runner: str = "local", **kw) -> object:
    return run_score(
        ScoreOptions(
            source=source,
            model_dir=str(model),
            output=warehouse,
            runner=runner,
            progress=False,
            max_error_rate=1.0,
            **kw,
        )
    )


def _query_json(warehouse: str, sql: str) -> list[dict]:
    res = CliRunner().invoke(app, ["query", "-o", warehouse, "--format", "json", sql])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


@pytest.mark.ray
def test_nightly_runs_on_s3(ray_local, s3_bucket, s3_env, synth_corpus, trained_model, tmp_path, monkeypatch):
    monkeypatch.setenv("AEI_HOME", str(tmp_path / "home"))  # no state there: the commit pointer is the truth
    client = s3_env.client()
    wavs = sorted(synth_corpus.rglob("*.wav"))
    first = _upload_corpus(client, s3_bucket, wavs[:12])
    source, warehouse = f"s3://{s3_bucket}/incoming/", f"s3://{s3_bucket}/warehouse"

    # 1. first run, through Ray: one row per file, keys with odd characters intact
    s1 = _score(source, trained_model, warehouse, runner="ray")
    assert (s1.files, s1.errors, s1.skipped) == (12, 0, 0)
    rows = read_predictions(warehouse)
    assert rows.num_rows == 12 and sorted(rows[COL.uri].to_pylist()) == sorted(first)
    heads = {
        f"s3://{s3_bucket}/{o['Key']}": o["ETag"].strip('"')
        for o in client.list_objects_v2(Bucket=s3_bucket, Prefix="incoming/")["Contents"]
    }
    assert {r[COL.uri]: r[COL.etag] for r in rows.to_pylist()} == heads
    table = open_table(resolve_catalog(warehouse), create=False)
    assert table.location().startswith(f"{warehouse}/aei.db/predictions")
    assert len(table.metadata.snapshots) == 1

    # 2. rerun of the same files with the same model: rows replaced, none added
    s2 = _score(source, trained_model, warehouse)
    assert s2.files == 12 and s2.replaced == 12
    assert read_predictions(warehouse).num_rows == 12

    # 3. ten new files, --incremental: only they are scored
    _upload_corpus(client, s3_bucket, wavs[12:22], prefix="incoming/batch2")
    s3 = _score(source, trained_model, warehouse, incremental=True)
    assert (s3.files, s3.skipped) == (10, 12)
    assert read_predictions(warehouse).num_rows == 22

    # 4. one file changes content (new ETag): it alone is rescored; the old row stays as history
    changed = first[0]
    key = changed[len(f"s3://{s3_bucket}/") :]
    client.put_object(Bucket=s3_bucket, Key=key, Body=media.noise_wav_bytes(seconds=1.5, seed=7))
    new_etag = client.head_object(Bucket=s3_bucket, Key=key)["ETag"].strip('"')
    s4 = _score(source, trained_model, warehouse, incremental=True)
    assert (s4.files, s4.skipped) == (1, 21)
    assert read_predictions(warehouse).num_rows == 23

    # 5. queries: the CLI over the views, and DuckDB's iceberg_scan on the metadata file
    latest = _query_json(warehouse, "SELECT uri, etag FROM latest ORDER BY uri")
    assert len(latest) == 22 and {r["uri"]: r["etag"] for r in latest}[changed] == new_etag
    counts = _query_json(warehouse, "SELECT count(*) AS n, count(DISTINCT uri) AS files FROM predictions")
    assert counts == [{"n": 23, "files": 22}]
    shown = CliRunner().invoke(
        app, ["query", "-o", warehouse, "--format", "json", "SELECT secret_string FROM duckdb_secrets()"]
    )
    assert shown.exit_code == 0 and "key_id=***" in shown.stdout and "secret=redacted" in shown.stdout
    assert s3_env.secret_key not in shown.output and s3_env.access_key not in shown.output  # never printed
    table = open_table(resolve_catalog(warehouse), create=False)
    con = connect()
    con.execute(
        f"CREATE SECRET (TYPE s3, KEY_ID '{s3_env.access_key}', SECRET '{s3_env.secret_key}', "
        f"REGION 'us-east-1', ENDPOINT '{s3_env.endpoint_url.split('//')[1]}', URL_STYLE 'path', "
        "USE_SSL false)"
    )
    (n,) = con.execute(f"SELECT count(*) FROM iceberg_scan('{table.metadata_location}')").fetchone()
    assert n == 23

    # 6. a crash right before the commit leaves the table as it was
    snapshot = table.current_snapshot().snapshot_id
    _upload_corpus(client, s3_bucket, wavs[22:25], prefix="incoming/batch3")
    monkeypatch.setenv(FAIL_BEFORE_COMMIT_ENV, "1")
    with pytest.raises(InjectedCommitFailure):
        _score(source, trained_model, warehouse, incremental=True)
    monkeypatch.delenv(FAIL_BEFORE_COMMIT_ENV)
    table = open_table(resolve_catalog(warehouse), create=False)
    assert table.current_snapshot().snapshot_id == snapshot
    assert read_predictions(warehouse).num_rows == 23

    # 7. a fresh machine (empty AEI_HOME) reads the commit pointer and carries on
    monkeypatch.setenv("AEI_HOME", str(tmp_path / "fresh-home"))
    assert _query_json(warehouse, "SELECT count(*) AS n FROM predictions") == [{"n": 23}]
    s5 = _score(source, trained_model, warehouse, incremental=True)
    assert (s5.files, s5.skipped) == (3, 22)
    assert read_predictions(warehouse).num_rows == 26

    # 8. the first machine follows the pointer too: it sees the other machine's commit, loses nothing
    monkeypatch.setenv("AEI_HOME", str(tmp_path / "home"))
    assert _query_json(warehouse, "SELECT count(*) AS n FROM predictions") == [{"n": 26}]
    assert read_predictions(warehouse).num_rows == 26
