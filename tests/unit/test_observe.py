"""Watching a run, piece by piece: summary JSON, snapshot properties, metrics, hook, lineage, logs."""

from __future__ import annotations

import json
import logging
import re
import socket
import sys
import threading
import urllib.request
import uuid
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pyarrow as pa
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aei_batch.errors import ConfigError, InputNotFoundError, ModelError
from aei_batch.observe import RunObserver, configure_logging, read_run_summary
from aei_batch.observe.lineage import build_event, lineage_run_id
from aei_batch.observe.logs import JsonFormatter
from aei_batch.observe.metrics import parse_metrics_target
from aei_batch.records import COL, PREDICTIONS_SCHEMA
from aei_batch.scoring.summary import RunSummary


def _summary(**kw) -> RunSummary:
    base = dict(
        run_id="20261129T230000Z-abcdef12",
        source="s3://in/calls/",
        destination="iceberg aei.predictions",
        files=10,
        scored=7,
        errors=3,
        seconds=2.0,
        error_codes={"DECODE_FAILED": 2, "SILENT": 1},
        model="ensemble 20261129T000000Z-1234abcd",
        model_licence="CC-BY-NC-SA-4.0: non-commercial use only",
    )
    return RunSummary(**{**base, **kw})


def _batch(codes: list[str | None], duration: float = 1.5) -> pa.Table:
    rows = []
    for i, code in enumerate(codes):
        row = {name: None for name in PREDICTIONS_SCHEMA.names}
        row.update(
            {
                COL.uri: f"/x/{i}.wav",
                COL.status: "error" if code else "ok",
                COL.error_code: code,
                COL.duration_s: None if code else duration,
            }
        )
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=PREDICTIONS_SCHEMA)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_snapshot_properties_are_strings_with_the_runs_facts():
    props = _summary().snapshot_properties()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in props.items())
    assert props["aei.run-id"] == "20261129T230000Z-abcdef12"
    assert props["aei.input"] == "s3://in/calls/"
    assert props["aei.files"] == "10" and props["aei.scored"] == "7" and props["aei.errors"] == "3"
    assert props["aei.errors.DECODE_FAILED"] == "2" and props["aei.errors.SILENT"] == "1"
    assert props["aei.files-per-s"] == "5.000"
    assert props["aei.model"].startswith("ensemble ")
    assert props["aei.model-licence"].startswith("CC-BY-NC-SA-4.0")


def test_summary_json_written_beside_the_table_and_read_back(tmp_path):
    s = _summary(errors=3, files=10)  # 30% errors: over the default 10%
    obs = RunObserver(output=str(tmp_path / "table"))
    obs.started(run_id=s.run_id, source=s.source, output=str(tmp_path / "table"), model=s.model, files=10)
    obs.completed(s)
    path = tmp_path / "table" / "_runs" / f"{s.run_id}.json"
    assert obs.summary_uri == str(path)
    data = json.loads(path.read_text())
    assert data["files"] == 10 and data["error_codes"] == {"DECODE_FAILED": 2, "SILENT": 1}
    assert data["exit_code"] == 3 and data["status"] == "completed_over_error_rate"
    assert data["model_licence"].startswith("CC-BY-NC-SA")
    assert read_run_summary(str(tmp_path / "table")) == data  # newest run by default
    assert read_run_summary(str(tmp_path / "table"), s.run_id) == data
    with pytest.raises(InputNotFoundError):
        read_run_summary(str(tmp_path / "table"), "20991231T000000Z-00000000")
    assert not list((tmp_path / "table" / "_runs").glob(".*"))  # no temporary file left


@pytest.mark.s3
def test_summary_json_on_s3(s3_bucket):
    s = _summary()
    out = f"s3://{s3_bucket}/warehouse"
    obs = RunObserver(output=out)
    obs.started(run_id=s.run_id, source=s.source, output=out, model=s.model, files=10)
    obs.completed(s)
    assert obs.summary_uri == f"{out}/_runs/{s.run_id}.json"
    assert read_run_summary(out)["run_id"] == s.run_id


def test_metrics_targets_are_checked_up_front(tmp_path):
    assert parse_metrics_target(":9464") == ("http", ("0.0.0.0", 9464))
    assert parse_metrics_target("127.0.0.1:9464") == ("http", ("127.0.0.1", 9464))
    assert parse_metrics_target(str(tmp_path / "aei.prom")) == ("textfile", tmp_path / "aei.prom")
    for bad in ("", ":70000", "s3://b/metrics.prom", str(tmp_path / "missing" / "aei.prom")):
        with pytest.raises(ConfigError):
            parse_metrics_target(bad)


def test_textfile_metrics_count_batches_and_errors_by_code(tmp_path):
    prom = tmp_path / "aei.prom"
    obs = RunObserver(output=str(tmp_path / "t"), metrics=str(prom))
    obs.started(run_id="r1", source="in/", output=str(tmp_path / "t"), model="m v", files=5)
    obs.batch_done(_batch([None, None, "SILENT"]), decode_seconds=0.5, model_seconds=0.25)
    got = _samples(prom.read_text())  # the first batch is written at once
    assert got[("aei_files_done_total", ())] == 3
    assert got[("aei_files_scored_total", ())] == 2
    assert got[("aei_file_errors_total", (("code", "SILENT"),))] == 1
    assert got[("aei_media_seconds_total", ())] == 3.0
    assert got[("aei_decode_seconds_total", ())] == 0.5 and got[("aei_model_seconds_total", ())] == 0.25
    assert got[("aei_run_state", (("state", "running"),))] == 1
    obs.batch_done(_batch([None, "DECODE_FAILED"]))
    obs.completed(_summary(run_id="r1", files=5, scored=3, errors=2))
    got = _samples(prom.read_text())
    assert got[("aei_files_done_total", ())] == 5
    assert got[("aei_file_errors_total", (("code", "DECODE_FAILED"),))] == 1
    assert got[("aei_run_state", (("state", "completed"),))] == 1
    assert [p.name for p in tmp_path.iterdir() if p.suffix != ".prom" and p.name != "t"] == []


def test_http_metrics_endpoint_serves_while_open_and_stops_on_close(tmp_path):
    port = _free_port()
    obs = RunObserver(metrics=f"127.0.0.1:{port}")
    try:
        obs.started(run_id="r2", source="in/", output=str(tmp_path), model="m v", files=4)
        obs.batch_done(_batch([None, "TOO_SHORT"]))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            got = _samples(resp.read().decode())
        assert got[("aei_files_done_total", ())] == 2
        assert got[("aei_file_errors_total", (("code", "TOO_SHORT"),))] == 1
        assert got[("aei_run_info", (("input", "in/"), ("model", "m v"), ("run_id", "r2")))] == 1
        with pytest.raises(ConfigError, match="cannot listen"):  # the port is taken
            RunObserver(metrics=f"127.0.0.1:{port}")
    finally:
        obs.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


class _Hook:
    """A local HTTP server recording POSTed JSON bodies."""

    def __init__(self, status: int = 200) -> None:
        received: list[dict] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_completion_hook_fires_once_with_the_summary(tmp_path):
    hook = _Hook()
    try:
        s = _summary()
        obs = RunObserver(output=str(tmp_path), on_complete=hook.url)
        obs.started(run_id=s.run_id, source=s.source, output=str(tmp_path), model=s.model, files=10)
        obs.completed(s)
        obs.failed(s.run_id, RuntimeError("late"))  # after completion: ignored
        obs.close()
        assert len(hook.received) == 1
        assert hook.received[0]["run_id"] == s.run_id and hook.received[0]["status"] != "failed"
        assert hook.received[0] == json.loads((tmp_path / "_runs" / f"{s.run_id}.json").read_text())
    finally:
        hook.close()


def test_completion_hook_reports_a_failure_with_its_exit_code(tmp_path):
    hook = _Hook()
    try:
        obs = RunObserver(output=str(tmp_path), on_complete=hook.url)
        obs.failed(None, ModelError("no model at m"))
        obs.failed(None, ModelError("again"))
        assert len(hook.received) == 1
        assert hook.received[0]["status"] == "failed" and hook.received[0]["exit_code"] == 7
        assert hook.received[0]["run_id"] is None
        assert "no model at m" in hook.received[0]["error"]
        for exc, code in ((KeyboardInterrupt(), 130), (SystemExit(143), 143), (RuntimeError("bug"), 1)):
            again = RunObserver(output=str(tmp_path), on_complete=hook.url)
            again.failed("r", exc)
            assert hook.received[-1]["exit_code"] == code
    finally:
        hook.close()


def test_completion_hook_command_gets_the_json_on_stdin(tmp_path):
    out = tmp_path / "hook.json"
    script = tmp_path / "hook.py"
    script.write_text(
        "import json, os, sys\n"
        "d = json.load(sys.stdin)\n"
        "env = [os.environ['AEI_RUN_ID'], os.environ['AEI_RUN_SUMMARY']]\n"
        f"open({str(out)!r}, 'w').write(json.dumps([d, *env]))\n"
    )
    s = _summary()
    obs = RunObserver(output=str(tmp_path / "t"), on_complete=f"{sys.executable} {script}")
    obs.started(run_id=s.run_id, source=s.source, output=str(tmp_path / "t"), model=s.model, files=10)
    obs.completed(s)
    data, run_id, summary_uri = json.loads(out.read_text())
    assert data["files"] == 10 and run_id == s.run_id
    assert summary_uri.endswith(f"_runs/{s.run_id}.json")


@pytest.mark.parametrize("target", ["", "no-such-program-aei --x", "http://"])
def test_bad_hook_targets_fail_fast(target):
    with pytest.raises(ConfigError):
        RunObserver(on_complete=target)


def _check_run_event(ev: dict) -> None:
    """The OpenLineage 2-0-2 RunEvent's required fields and formats (spec: OpenLineage.json, RunEvent)."""
    assert ev["eventType"] in ("START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER")
    datetime.fromisoformat(ev["eventTime"].replace("Z", "+00:00"))
    assert re.match(r"^[a-z][a-z0-9+.-]*:", ev["producer"]) and ev["schemaURL"].startswith("https://")
    assert str(uuid.UUID(ev["run"]["runId"])) == ev["run"]["runId"]
    assert ev["job"]["namespace"] and ev["job"]["name"]
    for ds in ev["inputs"] + ev["outputs"]:
        assert set(ds) >= {"namespace", "name"}
    for facet in ev["run"]["facets"].values():
        assert facet["_producer"] and facet["_schemaURL"]


def test_lineage_events_to_a_file(tmp_path):
    path = tmp_path / "lineage.jsonl"
    s = _summary()
    obs = RunObserver(output="s3://lake/warehouse", lineage=str(path))
    obs.started(run_id=s.run_id, source=s.source, output="s3://lake/warehouse", model=s.model, files=10)
    obs.completed(s)
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    for ev in events:
        _check_run_event(ev)
        assert ev["run"]["runId"] == lineage_run_id(s.run_id)
        assert ev["run"]["facets"]["aei_run"]["runId"] == s.run_id
    assert events[0]["inputs"] == [{"namespace": "s3://in", "name": "calls"}]
    assert events[0]["outputs"] == [{"namespace": "s3://lake", "name": "warehouse"}]
    assert events[1]["run"]["facets"]["aei_run"]["summary"]["aei.files"] == "10"
    fail = build_event("FAIL", run_id="r", source="/in", output="/out", error=RuntimeError("boom"))
    _check_run_event(fail)
    assert fail["run"]["facets"]["errorMessage"]["message"] == "boom"


def test_lineage_events_over_http_go_to_the_default_path(tmp_path):
    hook = _Hook()
    try:
        base = hook.url.rsplit("/", 1)[0]
        obs = RunObserver(output=str(tmp_path), lineage=base)
        obs.started(run_id="r9", source="/in", output=str(tmp_path), model="m", files=1)
        obs.failed("r9", RuntimeError("boom"))
        assert [e["eventType"] for e in hook.received] == ["START", "FAIL"]
    finally:
        hook.close()


def test_json_logs_one_object_per_line(capsys):
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging("json")
        logging.getLogger("aei_batch.test").warning("scored %d files", 3, extra={"run_id": "r1"})
        line = capsys.readouterr().err.strip().splitlines()[-1]
        data = json.loads(line)
        assert data["message"] == "scored 3 files" and data["level"] == "WARNING"
        assert data["logger"] == "aei_batch.test" and data["run_id"] == "r1"
        with pytest.raises(ConfigError):
            configure_logging("xml")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    rec = logging.makeLogRecord({"msg": "x", "levelname": "INFO", "name": "n"})
    assert json.loads(JsonFormatter().format(rec))["message"] == "x"


def test_progress_lines_without_a_terminal(tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("AEI_PROGRESS", "lines")
    obs = RunObserver.from_options(type("O", (), {"output": str(tmp_path), "progress": False})())
    assert obs.progress_lines
    obs.started(run_id="r", source="in", output=str(tmp_path), model="m", files=4)
    obs.batch_done(_batch([None, None]))
    obs.completed(_summary(run_id="r", files=4, scored=4, errors=0, error_codes={}))
    lines = [r.getMessage() for r in caplog.records if r.name == "aei_batch.progress"]
    assert lines[0].startswith("scoring: 0/4 files (0%)") and lines[1].startswith("scoring: 2/4 files (50%)")
    assert lines[2].startswith("scored 4 files: 4 ok, 0 errors") and len(lines) == 3
    assert not any("\r" in line for line in lines)


def test_observer_reads_options_it_does_not_know_yet(tmp_path):
    class Old:  # a ScoreOptions from before metrics/on_complete/lineage existed
        output = str(tmp_path)
        progress = True

    obs = RunObserver.from_options(Old())
    assert obs.exporter is None and obs.on_complete is None and obs.lineage is None
    assert Path(tmp_path).is_dir()


@pytest.mark.ray
def test_ray_metrics_record_on_a_connected_driver(ray_local, caplog):
    obs = RunObserver()
    obs.started(run_id="r", source="s", output="/tmp/x", model="m", files=3)
    with caplog.at_level(logging.WARNING, logger="aei_batch.observe"):
        obs.batch_done(_batch([None, "SILENT"]), decode_seconds=0.1, model_seconds=0.1)
    assert type(obs.ray_metrics).__name__ == "RayMetrics"
    assert not [r for r in caplog.records if r.name.startswith("aei_batch.observe")]
