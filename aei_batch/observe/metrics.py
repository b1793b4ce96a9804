"""Metrics while a run is in progress: files done and scored, errors by code, media, decode and model seconds.

Three exporters share one set of counters (`RunMetrics`):

* a Prometheus **textfile** (`--metrics PATH`, for node_exporter's textfile collector): rewritten at
  most once a second while the run goes, through a temporary file and a rename, so a scrape never reads
  half a file; written a last time when the run ends;
* a Prometheus **HTTP endpoint** (`--metrics :PORT` on every interface, or `--metrics HOST:PORT`), served
  by `prometheus_client` from a thread of the driver for as long as the run lasts (a thread in the driver
  means the pool's workers and the decode watchdog start fresh interpreters instead of forks: slower to
  start, same rows);
* **Ray's metrics** (`ray.util.metrics`) whenever the driver is connected to Ray, so a cluster's
  Prometheus and Grafana see the same counters with Ray's own (docs/OBSERVE.md).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aei_batch.errors import ConfigError

log = logging.getLogger(__name__)

_HTTP = re.compile(r"^(?P<host>[A-Za-z0-9.\-\[\]:]*?):(?P<port>\d{1,5})$")
TEXTFILE_MIN_INTERVAL_S = 1.0


@dataclass
class BatchCounts:
    """What one batch added."""

    done: int
    errors: Counter[str]
    media_seconds: float
    decode_seconds: float | None
    model_seconds: float | None


class RunMetrics:
    """The counters of one run, in plain Python; exporters read them."""

    def __init__(self) -> None:
        self.run_id = ""
        self.source = ""
        self.model = ""
        self.files = 0
        self.done = 0
        self.scored = 0
        self.errors: Counter[str] = Counter()
        self.media_seconds = 0.0
        self.decode_seconds: float | None = None
        self.model_seconds: float | None = None
        self.started_at = time.time()
        self.updated_at = self.scoring_since = self.started_at
        self.state = "starting"

    def start(self, *, run_id: str, source: str, model: str, files: int) -> None:
        self.run_id, self.source, self.model, self.files = run_id, source, model, files
        self.state = "running"
        self.updated_at = self.scoring_since = time.time()

    def add_batch(
        self, batch: Any, *, decode_seconds: float | None = None, model_seconds: float | None = None
    ) -> BatchCounts:
        """Count a batch of predictions rows (a pyarrow Table with the predictions columns)."""
        import pyarrow.compute as pc

        from aei_batch.records import COL, STATUS_ERROR

        is_err = pc.equal(batch[COL.status], STATUS_ERROR)
        codes = Counter(c or "UNKNOWN" for c in pc.filter(batch[COL.error_code], is_err).to_pylist())
        media = 0.0
        if COL.duration_s in batch.column_names:
            media = float(pc.sum(batch[COL.duration_s]).as_py() or 0.0)
        counts = BatchCounts(batch.num_rows, codes, media, decode_seconds, model_seconds)
        self.done += counts.done
        self.scored += counts.done - sum(codes.values())
        self.errors.update(codes)
        self.media_seconds += media
        if decode_seconds is not None:
            self.decode_seconds = (self.decode_seconds or 0.0) + decode_seconds
        if model_seconds is not None:
            self.model_seconds = (self.model_seconds or 0.0) + model_seconds
        self.updated_at = time.time()
        return counts

    def finish(self, state: str) -> None:
        self.state = state
        self.updated_at = time.time()

    @property
    def files_per_s(self) -> float:
        elapsed = self.updated_at - self.scoring_since  # since listing and the model load ended
        return self.done / elapsed if elapsed > 0 else 0.0


class _Collector:
    """A prometheus_client collector that reads a RunMetrics at scrape time."""

    def __init__(self, m: RunMetrics) -> None:
        self.m = m

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        m = self.m
        info = GaugeMetricFamily(
            "aei_run_info", "The run being watched (value 1).", labels=["run_id", "model", "input"]
        )
        info.add_metric([m.run_id, m.model, m.source], 1)
        yield info
        state = GaugeMetricFamily("aei_run_state", "1 for the run's current state.", labels=["state"])
        for s in ("starting", "running", "completed", "failed"):
            state.add_metric([s], 1.0 if m.state == s else 0.0)
        yield state
        yield GaugeMetricFamily(
            "aei_run_files", "Files this run scores (after --incremental).", value=m.files
        )
        yield CounterMetricFamily("aei_files_done", "Files with a row (scored or error).", value=m.done)
        yield CounterMetricFamily("aei_files_scored", "Files scored (status ok).", value=m.scored)
        errors = CounterMetricFamily("aei_file_errors", "Error rows by error code.", labels=["code"])
        for code, n in sorted(m.errors.items()):
            errors.add_metric([code], n)
        yield errors
        yield CounterMetricFamily(
            "aei_media_seconds", "Seconds of audio/video decoded.", value=m.media_seconds
        )
        if m.decode_seconds is not None:
            yield CounterMetricFamily(
                "aei_decode_seconds", "Worker seconds spent decoding.", value=m.decode_seconds
            )
        if m.model_seconds is not None:
            yield CounterMetricFamily(
                "aei_model_seconds", "Worker seconds spent in the model.", value=m.model_seconds
            )
        yield GaugeMetricFamily(
            "aei_files_per_second", "Files done per second since scoring began.", value=m.files_per_s
        )
        yield GaugeMetricFamily(
            "aei_run_start_time_seconds", "Unix time the run started.", value=m.started_at
        )
        yield GaugeMetricFamily(
            "aei_run_last_update_time_seconds", "Unix time of the last counted batch.", value=m.updated_at
        )


def parse_metrics_target(spec: str) -> tuple[str, Any]:
    """`:PORT` / `HOST:PORT` -> ("http", (host, port)); else ("textfile", Path). Raises ConfigError."""
    spec = spec.strip()
    if not spec:
        raise ConfigError("--metrics is empty", hint="give a .prom file path or :PORT")
    m = _HTTP.match(spec)
    if m and "/" not in spec:
        port = int(m["port"])
        if not 0 < port < 65536:
            raise ConfigError(f"--metrics port {port} is out of range", hint="use :PORT with 1-65535")
        return "http", (m["host"].strip("[]") or "0.0.0.0", port)
    if spec.startswith("s3://"):
        raise ConfigError(
            "--metrics must be a local file or :PORT, not s3://",
            hint="point node_exporter's textfile collector at a local folder",
        )
    path = Path(spec).expanduser()
    if not path.parent.is_dir():
        raise ConfigError(f"--metrics: folder {path.parent} does not exist", hint="create it or fix the path")
    return "textfile", path


class PrometheusExporter:
    """Serves or writes one RunMetrics in the Prometheus text format."""

    def __init__(self, spec: str, metrics: RunMetrics) -> None:
        try:
            from prometheus_client import CollectorRegistry
        except ImportError:  # pragma: no cover - installed with ray[default]
            raise ConfigError(
                "--metrics needs the prometheus_client package", hint="pip install prometheus_client"
            ) from None
        self.kind, self.target = parse_metrics_target(spec)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(metrics))  # type: ignore[arg-type]
        self._server: Any = None
        self._last_write = 0.0
        if self.kind == "http":
            self._serve()

    def _serve(self) -> None:
        from prometheus_client import start_http_server

        host, port = self.target
        try:
            self._server, _thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise ConfigError(
                f"--metrics cannot listen on {host}:{port}: {exc.strerror or exc}",
                hint="choose a free port",
            ) from None
        log.info("metrics: serving http://%s:%d/metrics", host, port)

    def update(self, *, final: bool = False) -> None:
        """Rewrite the textfile (at most once a second; always when `final`); HTTP reads at scrape time."""
        if self.kind != "textfile":
            return
        now = time.monotonic()
        if not final and now - self._last_write < TEXTFILE_MIN_INTERVAL_S and self._last_write:
            return
        from prometheus_client import write_to_textfile

        try:
            write_to_textfile(str(self.target), self.registry)  # temporary file + rename
        except OSError as exc:
            log.warning("metrics: cannot write %s: %s", self.target, exc)
        self._last_write = now

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class RayMetrics:
    """The same counters through `ray.util.metrics` (exported by each Ray node's metrics agent)."""

    def __init__(self) -> None:
        from ray.util.metrics import Counter as RayCounter
        from ray.util.metrics import Gauge as RayGauge

        self.done = RayCounter("aei_files_done", description="Files with a row (scored or error).")
        self.scored = RayCounter("aei_files_scored", description="Files scored (status ok).")
        self.errors = RayCounter("aei_file_errors", description="Error rows by code.", tag_keys=("code",))
        self.media = RayCounter("aei_media_seconds", description="Seconds of audio/video decoded.")
        self.files = RayGauge("aei_run_files", description="Files this run scores.")
        self.decode = RayCounter("aei_decode_seconds", description="Worker seconds spent decoding.")
        self.model = RayCounter("aei_model_seconds", description="Worker seconds spent in the model.")

    @staticmethod
    def connected() -> bool:
        """Whether this process is connected to Ray (a cluster, or an embedded local Ray)."""
        import sys

        if "ray" not in sys.modules or os.environ.get("AEI_RAY_METRICS") == "0":
            return False
        import ray

        return bool(ray.is_initialized())

    def record(self, c: BatchCounts, files: int) -> None:
        """Add one batch's counts."""
        self.files.set(files)
        if c.done:
            self.done.inc(c.done)
        scored = c.done - sum(c.errors.values())
        if scored:
            self.scored.inc(scored)
        for code, n in c.errors.items():
            self.errors.inc(n, tags={"code": code})
        if c.media_seconds > 0:
            self.media.inc(c.media_seconds)
        if c.decode_seconds:
            self.decode.inc(c.decode_seconds)
        if c.model_seconds:
            self.model.inc(c.model_seconds)
