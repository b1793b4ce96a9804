"""The Python API end to end: from a plain `python -c` with no terminal (as a notebook kernel runs), in
process, and against the CLI (same rows); a run watched while it goes (metrics scraped mid-run, progress
lines, lineage events, the completion hook)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import aei_batch
from aei_batch.errors import ConfigError, ExitCode, ModelError
from aei_batch.records import COL
from tests.unit.test_observe import _Hook

pytestmark = pytest.mark.slow

RUN_SPECIFIC = {COL.run_id, COL.run_date, COL.scored_at}
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def manifest(synth_corpus, tmp_path) -> Path:
    """12 files of the synthetic corpus as a manifest (a quick run)."""
    files = sorted(synth_corpus.rglob("*.wav"))[::5][:12]
    (tmp_path / "in").mkdir()
    for f in files:  # beside the manifest: a manifest may name files under its own folder (--allow-root)
        (tmp_path / "in" / f.name).write_bytes(f.read_bytes())
    path = tmp_path / "manifest.csv"
    path.write_text("uri\n" + "".join(f"in/{f.name}\n" for f in files))
    return path


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AEI_TEST_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _rows(output: Path) -> dict[str, dict]:
    t = aei_batch.read_predictions(output, table_format="parquet")
    return {r[COL.uri]: {k: v for k, v in r.items() if k not in RUN_SPECIFIC} for r in t.to_pylist()}


def test_api_from_plain_python_without_a_tty_gives_the_cli_rows(manifest, trained_model, tmp_path):
    code = (
        "import json, aei_batch\n"
        f"s = aei_batch.score({str(manifest)!r}, model_dir={str(trained_model)!r}, "
        f"output={str(tmp_path / 'api')!r}, runner='local', format='parquet', decode_timeout_s=0)\n"
        "print(json.dumps(s.to_dict()))\n"
    )
    api = subprocess.run(
        [sys.executable, "-c", code],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert api.returncode == 0, api.stderr[-3000:]
    summary = json.loads(api.stdout.strip().splitlines()[-1])
    assert summary["files"] == 12 and summary["exit_code"] == 0
    assert "\r" not in api.stderr and "scoring:" not in api.stderr  # no bar drawn into a pipe
    cli = subprocess.run(
        [sys.executable, "-m", "aei_batch.cli", "score", str(manifest), "-m", str(trained_model)]
        + [
            "-o",
            str(tmp_path / "cli"),
            "--runner",
            "local",
            "--format",
            "parquet",
            "--decode-timeout-s",
            "0",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert cli.returncode == 0, cli.stderr[-3000:]
    api_rows, cli_rows = _rows(tmp_path / "api"), _rows(tmp_path / "cli")
    assert len(api_rows) == 12 and api_rows.keys() == cli_rows.keys()
    for uri, row in api_rows.items():
        other = cli_rows[uri]
        assert row[COL.predicted_emotion] == other[COL.predicted_emotion]
        assert row[COL.confidence] == pytest.approx(other[COL.confidence], abs=1e-6)
        assert {k: v for k, v in row.items() if not k.startswith("p_") and k != COL.confidence} == {
            k: v for k, v in other.items() if not k.startswith("p_") and k != COL.confidence
        }
    assert (tmp_path / "api" / "_runs" / f"{summary['run_id']}.json").is_file()


def test_cli_log_format_json_makes_every_log_line_json(manifest, trained_model, tmp_path):
    """`--log-format json` reaches the command's logging: log pipelines get one object per line."""
    cli = subprocess.run(
        [sys.executable, "-m", "aei_batch.cli", "score", str(manifest), "-m", str(trained_model)]
        + ["-o", str(tmp_path / "out"), "--runner", "local", "--table-format", "parquet", "-v"]
        + ["--log-format", "json"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert cli.returncode == 0, cli.stderr[-3000:]
    lines = [line for line in cli.stderr.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # fails on any line that is not JSON
    assert any(r["logger"] == "aei_batch.scoring.job" and r["level"] == "INFO" for r in records)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_a_run_is_watched_while_it_goes(manifest, trained_model, tmp_path):
    """Metrics scraped from the run's endpoint mid-run; progress lines, lineage and the hook at the end."""
    port = _free_port()
    hook_out = tmp_path / "hook.json"
    hook = tmp_path / "hook.py"
    hook.write_text(f"import sys\nopen({str(hook_out)!r}, 'a').write(sys.stdin.read() + '\\n')\n")
    lineage = tmp_path / "lineage.jsonl"
    code = (
        "import aei_batch\n"
        f"aei_batch.score({str(manifest)!r}, model_dir={str(trained_model)!r},"
        f" output={str(tmp_path / 'out')!r},"
        f" runner='local', format='parquet', decode_timeout_s=0, batch_size=4, metrics='127.0.0.1:{port}',"
        f" lineage={str(lineage)!r}, on_complete={f'{sys.executable} {hook}'!r})\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # A Ray job's driver has no terminal and this variable: progress comes as plain lines.
        env=_env(AEI_TEST_PAUSE_AFTER_FIRST_BATCH_S="8", RAY_JOB_CONFIG_JSON_ENV_VAR="{}"),
    )
    err: list[str] = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            err.append(line)
            if line.startswith("AEI_TEST: after_first_batch"):
                break
        else:
            pytest.fail("the run never reached its first batch:\n" + "".join(err)[-3000:])
        mid = _scrape(port)  # the run is paused after its first batch: 4 of 12 files
        assert mid[("aei_run_state", (("state", "running"),))] == 1
        assert mid[("aei_run_files", ())] == 12
        assert mid[("aei_files_done_total", ())] == 4
        assert mid[("aei_files_scored_total", ())] == 4
        assert mid[("aei_media_seconds_total", ())] > 0
        err += proc.stderr.readlines()
        assert proc.wait(timeout=300) == 0, "".join(err)[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    text = "".join(err)
    assert "scoring: 4/12 files (33%)" in text and "scored 12 files: 12 ok, 0 errors" in text
    assert "\r" not in text
    calls = [json.loads(line) for line in hook_out.read_text().splitlines()]
    assert len(calls) == 1 and calls[0]["files"] == 12 and calls[0]["status"] == "completed"
    events = [json.loads(line) for line in lineage.read_text().splitlines()]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    assert aei_batch.read_run_summary(tmp_path / "out") == calls[0]
    with pytest.raises(OSError):  # the endpoint went away with the run
        _scrape(port)


def test_api_in_process_like_a_notebook(manifest, trained_model, tmp_path):
    hook = _Hook()
    try:
        out = tmp_path / "table"
        s = aei_batch.score(
            manifest,
            model_dir=trained_model,
            output=out,
            runner="local",
            decode_timeout_s=0,
            on_complete=hook.url,
        )
        again = aei_batch.score(
            manifest, model_dir=trained_model, output=out, runner="local", decode_timeout_s=0
        )
    finally:
        hook.close()
    assert s.files == s.scored == 12 and s.exit_code == ExitCode.OK
    assert "synthetic" in s.model_licence
    assert len(hook.received) == 1 and hook.received[0]["run_id"] == s.run_id
    df = aei_batch.read_predictions(out, as_pandas=True)
    assert len(df) == 12 and set(df[COL.run_id]) == {again.run_id}  # merge: the rerun replaced the rows
    assert aei_batch.read_predictions(out, run_id=again.run_id, latest=True).num_rows == 12
    q = aei_batch.query("SELECT count(*) AS n FROM latest", output=out)
    assert q.column("n").to_pylist() == [12]
    assert aei_batch.read_run_summary(out)["run_id"] == again.run_id
    assert aei_batch.read_run_summary(out, s.run_id)["run_id"] == s.run_id


def test_api_errors_carry_exit_code_and_fix(manifest, tmp_path):
    with pytest.raises(ModelError) as err:
        aei_batch.score(manifest, model_dir=tmp_path / "nope", output=tmp_path / "o")
    assert err.value.exit_code == ExitCode.MODEL and err.value.hint
    with pytest.raises(ConfigError, match="unknown score option 'max_eror_rate'") as err2:
        aei_batch.score(manifest, model_dir=tmp_path, output=tmp_path / "o", max_eror_rate=0.2)
    assert "max_error_rate" in (err2.value.hint or "") and err2.value.exit_code == ExitCode.CONFIG
    with pytest.raises(ConfigError, match="missing.*output"):
        aei_batch.score(manifest, model_dir=tmp_path)
    with pytest.raises(ConfigError, match="--max-error-rate"):
        aei_batch.score(manifest, model_dir=tmp_path, output=tmp_path / "o", max_error_rate=2)
    with pytest.raises(ConfigError, match="--metrics"):
        aei_batch.score(manifest, model_dir=tmp_path, output=tmp_path / "o", metrics="s3://b/x.prom")


def test_importing_the_package_stays_cheap():
    heavy = ("pyarrow", "numpy", "ray", "aei_batch.api")
    code = f"import sys, aei_batch; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
    assert aei_batch.score.__module__ == "aei_batch.api"  # loaded on first use


def test_train_and_evaluate_check_their_options_like_the_cli(synth_corpus, tmp_path):
    with pytest.raises(ConfigError, match="actor ids must be 1-99"):
        aei_batch.train(synth_corpus, model_dir=tmp_path / "m", holdout_actors="0-3")
    with pytest.raises(ConfigError) as err:
        aei_batch.train(
            synth_corpus, model_dir=tmp_path / "m", models=["svc", "no_such_model"], runner="local"
        )
    assert err.value.exit_code == ExitCode.CONFIG
    assert not (tmp_path / "m" / "card.json").exists()
    with pytest.raises(ConfigError, match="exactly one of"):
        aei_batch.evaluate(synth_corpus)
    with pytest.raises(ConfigError, match="unknown evaluate option 'fold'"):
        aei_batch.evaluate(synth_corpus, cv=True, fold=3)
