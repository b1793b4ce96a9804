"""The spine end to end: list -> Ray -> one row per file -> a published table (folders, S3, manifests)."""

import csv
import json
import shutil

import pyarrow.compute as pc
import pytest
from typer.testing import CliRunner

from aei_batch.cli import app
from aei_batch.errors import ExitCode
from aei_batch.io.sinks.parquet import read_table
from aei_batch.records import COL, PREDICTIONS_SCHEMA, STATUS_ERROR, STATUS_OK
from aei_batch.scoring.job import ScoreOptions, run_score
from tests.support import media

RUN_SPECIFIC = {COL.run_id, COL.run_date, COL.scored_at}


@pytest.fixture
def corpus_with_corrupt(synth_corpus, tmp_path):
    root = tmp_path / "in"
    shutil.copytree(synth_corpus, root)
    (root / "Actor_17" / "03-01-05-01-02-01-17.wav").write_bytes(media.random_bytes(2048))
    return root


def _score(source, model_dir, output, runner, **kw):
    return run_score(
        ScoreOptions(
            source=str(source),
            model_dir=str(model_dir),
            output=str(output),
            runner=runner,
            table_format="parquet",
            progress=False,
            max_error_rate=1.0,
            **kw,
        )
    )


def _rows_by_uri(table):
    return {r[COL.uri]: {k: v for k, v in r.items() if k not in RUN_SPECIFIC} for r in table.to_pylist()}


@pytest.mark.ray
def test_ray_and_local_runners_give_the_same_rows(ray_local, corpus_with_corrupt, trained_model, tmp_path):
    n_files = len(list(corpus_with_corrupt.rglob("*.wav")))
    s_ray = _score(corpus_with_corrupt, trained_model, tmp_path / "t_ray", "ray")
    s_local = _score(corpus_with_corrupt, trained_model, tmp_path / "t_local", "local")
    t_ray, t_local = read_table(str(tmp_path / "t_ray")), read_table(str(tmp_path / "t_local"))
    assert s_ray.files == s_local.files == t_ray.num_rows == t_local.num_rows == n_files
    assert t_ray.schema.equals(PREDICTIONS_SCHEMA)
    assert len(set(t_ray[COL.uri].to_pylist())) == n_files  # exactly one row per file
    ray_rows, local_rows = _rows_by_uri(t_ray), _rows_by_uri(t_local)
    assert ray_rows.keys() == local_rows.keys()
    for uri, row in ray_rows.items():
        other = local_rows[uri]
        for key, value in row.items():
            expected = pytest.approx(other[key], rel=1e-6) if isinstance(value, float) else other[key]
            assert value == expected, (uri, key)


@pytest.mark.ray
def test_one_corrupt_file_gives_exactly_one_error_row(
    ray_local, corpus_with_corrupt, trained_model, tmp_path
):
    summary = _score(corpus_with_corrupt, trained_model, tmp_path / "t", "ray")
    table = read_table(str(tmp_path / "t"))
    errors = table.filter(pc.equal(table[COL.status], STATUS_ERROR)).to_pylist()
    assert summary.errors == 1 and len(errors) == 1
    assert errors[0][COL.uri].endswith("03-01-05-01-02-01-17.wav")
    assert errors[0][COL.error_code] == "DECODE_FAILED" and "cannot decode" in errors[0][COL.error_message]
    assert errors[0][COL.label_emotion] == "angry"  # labels are still parsed for error rows
    ok = table.filter(pc.equal(table[COL.status], STATUS_OK))
    assert ok.num_rows == table.num_rows - 1
    probs = ok.select([c for c in table.column_names if c.startswith("p_")]).to_pandas()
    assert probs.sum(axis=1).round(6).eq(1.0).all()
    assert ok[COL.predicted_emotion].null_count == 0 and ok[COL.second_emotion].null_count == 0
    # the synthetic emotions are learnable: held-out actors are mostly right
    held = [r for r in ok.to_pylist() if r[COL.actor] >= 21]
    accuracy = sum(r[COL.predicted_emotion] == r[COL.label_emotion] for r in held) / len(held)
    assert accuracy > 0.6
    files = list((tmp_path / "t").rglob("*.parquet"))
    assert len(files) == 1 and files[0].parent.name.startswith("run_date=")


def test_manifest_carries_extra_columns(synth_corpus, trained_model, tmp_path):
    wavs = sorted(synth_corpus.rglob("*.wav"))[:5]
    manifest = tmp_path / "m.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["uri", "customer", "speaker_id"])
        for i, p in enumerate(wavs):
            w.writerow([str(p), f"c{i}", "spk-1"])
    _score(manifest, trained_model, tmp_path / "t", "local")
    table = read_table(str(tmp_path / "t"))
    assert table.num_rows == 5
    rows = sorted(table.to_pylist(), key=lambda r: r[COL.uri])
    assert [json.loads(r[COL.extra])["customer"] for r in rows] == [f"c{i}" for i in range(5)]
    assert {r[COL.speaker_id] for r in rows} == {"spk-1"}


@pytest.mark.s3
@pytest.mark.ray
def test_s3_prefix_to_s3_table(ray_local, s3_bucket, s3_env, synth_corpus, trained_model):
    client = s3_env.client()
    wavs = sorted(synth_corpus.rglob("*.wav"))[:12]
    for p in wavs:
        client.upload_file(str(p), s3_bucket, f"incoming/{p.parent.name}/{p.name}")
    client.put_object(Bucket=s3_bucket, Key="incoming/notes.txt", Body=b"not audio")  # filtered by extension
    summary = _score(
        f"s3://{s3_bucket}/incoming/", trained_model, f"s3://{s3_bucket}/tables/predictions", "ray"
    )
    assert summary.files == 12 and summary.errors == 0
    assert summary.destination.startswith(f"s3://{s3_bucket}/tables/predictions/run_date=")
    table = read_table(f"s3://{s3_bucket}/tables/predictions")
    assert table.num_rows == 12
    heads = {
        f"s3://{s3_bucket}/{o['Key']}": o["ETag"].strip('"')
        for o in client.list_objects_v2(Bucket=s3_bucket, Prefix="incoming/")["Contents"]
    }
    for row in table.to_pylist():
        assert row[COL.etag] == heads[row[COL.uri]]
        assert row[COL.size_bytes] > 0


def test_cli_exit_codes(synth_corpus, trained_model, tmp_path):
    runner = CliRunner()
    out = str(tmp_path / "t")
    res = runner.invoke(app, ["score", str(synth_corpus), "--model-dir", str(tmp_path / "none"), "-o", out])
    assert res.exit_code == ExitCode.MODEL and "aei-batch train" in res.output
    res = runner.invoke(
        app, ["score", str(tmp_path / "nowhere"), "--model-dir", str(trained_model), "-o", out]
    )
    assert res.exit_code == ExitCode.INPUT_NOT_FOUND and "not found" in res.output
    res = runner.invoke(
        app, ["score", str(synth_corpus), "-m", str(trained_model), "-o", out, "--max-error-rate", "2"]
    )
    assert res.exit_code == ExitCode.CONFIG and "max-error-rate" in res.output
    assert not (tmp_path / "t").exists()  # nothing was written by failed runs


def test_error_rate_over_the_limit_exits_3(tmp_path, trained_model):
    src = tmp_path / "in"
    src.mkdir()
    (src / "good.wav").write_bytes(media.sine_wav_bytes(seconds=1.0))
    (src / "bad.wav").write_bytes(b"")
    res = CliRunner().invoke(
        app,
        [
            "score",
            str(src),
            "-m",
            str(trained_model),
            "-o",
            str(tmp_path / "t"),
            "--runner",
            "local",
            "--format",
            "parquet",
            "--max-error-rate",
            "0.2",
        ],
    )
    assert res.exit_code == ExitCode.ERROR_RATE, res.output
    assert read_table(str(tmp_path / "t")).num_rows == 2  # rows are committed even so


def test_a_file_that_changes_while_it_is_scored_is_an_error_row(trained_model, tmp_path):
    """Listed with one identity, read with another: the row must not key the new content's prediction with
    the old etag, so the file is a FILE_CHANGED error row (a rerun scores the new content)."""
    import os

    from aei_batch.io import storage
    from aei_batch.scoring.rows import RunContext, refs_to_table
    from aei_batch.scoring.stage import ScoreStage
    from tests.support import media

    for name in ("same.wav", "changed.wav"):
        (tmp_path / name).write_bytes(media.noise_wav_bytes(seconds=1.0, seed=1))
    refs = list(storage.list_inputs(str(tmp_path)))
    (tmp_path / "changed.wav").write_bytes(media.noise_wav_bytes(seconds=1.5, seed=2))
    os.utime(tmp_path / "changed.wav", ns=(1, 1))
    stage = ScoreStage(RunContext.new(str(trained_model), decode_timeout_s=30.0))
    stage.setup()
    try:
        out = stage.process_batch(refs_to_table(refs)).predictions.to_pylist()
    finally:
        stage.teardown()
    codes = {r["uri"].rsplit("/", 1)[-1]: (r["status"], r["error_code"]) for r in out}
    assert codes == {"same.wav": ("ok", None), "changed.wav": ("error", "FILE_CHANGED")}
