"""`RunObserver`: everything that watches a scoring run, behind five calls the job makes.

    obs = RunObserver.from_options(opts)      # validates --metrics/--on-complete/--lineage (exit 4)
    obs.started(run_id=..., source=..., output=..., model=..., files=n)
    obs.batch_done(predictions_batch)         # each batch of rows, as the driver receives it
    obs.completed(summary) | obs.failed(run_id, exc)
    obs.close()

What it does: the run summary JSON beside the table (always), metrics while the run goes (`metrics`),
one completion hook call per run (`on_complete`), OpenLineage events (`lineage`), and plain progress
lines when there is no terminal to draw a bar on (a Ray job's log, `AEI_PROGRESS=lines`). Nothing here
can fail a run once it has started: exporters log a warning and carry on.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from aei_batch.observe.metrics import PrometheusExporter, RayMetrics, RunMetrics
    from aei_batch.scoring.summary import RunSummary

log = logging.getLogger(__name__)
progress_log = logging.getLogger("aei_batch.progress")

PROGRESS_INTERVAL_S = float(os.environ.get("AEI_PROGRESS_INTERVAL_S", "10"))


def progress_lines_wanted(bar: bool) -> bool:
    """Plain progress lines instead of a bar: asked for, or a Ray job's driver with no terminal."""
    mode = os.environ.get("AEI_PROGRESS", "")
    if mode == "lines":
        return True
    if mode == "0" or (bar and sys.stderr.isatty()):
        return False
    return "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ and not sys.stderr.isatty()


class RunObserver:
    """Watches one run. Build it with `from_options` (it checks the options at once)."""

    def __init__(
        self,
        *,
        output: str | None = None,
        metrics: str | None = None,
        on_complete: str | None = None,
        lineage: str | None = None,
        progress_lines: bool = False,
        write_summary: bool = True,
    ) -> None:
        from aei_batch.observe.metrics import RunMetrics

        self.output = output
        self.write_summary = write_summary
        self.counts: RunMetrics = RunMetrics()
        self.exporter: PrometheusExporter | None = None
        self.ray_metrics: RayMetrics | None = None
        self._ray_checked = False
        self.on_complete = None
        self.lineage = None
        if on_complete is not None:
            from aei_batch.observe.hooks import check_target

            self.on_complete = check_target(on_complete)
        if lineage is not None:
            from aei_batch.observe.lineage import check_target as check_lineage

            self.lineage = check_lineage(lineage)
        if metrics is not None:
            from aei_batch.observe.metrics import PrometheusExporter

            self.exporter = PrometheusExporter(metrics, self.counts)  # last: it may open a port
        self.progress_lines = progress_lines
        self.run_id: str | None = None
        self.source = ""
        self.summary_uri: str | None = None
        self._fired = False
        self._ended = False
        self._last_line = 0.0

    @classmethod
    def from_options(cls, opts: Any) -> RunObserver:
        """From a ScoreOptions (or anything with its attribute names). Raises ConfigError (exit 4)."""
        return cls(
            output=getattr(opts, "output", None),
            metrics=getattr(opts, "metrics", None),
            on_complete=getattr(opts, "on_complete", None),
            lineage=getattr(opts, "lineage", None),
            progress_lines=progress_lines_wanted(bool(getattr(opts, "progress", False))),
        )

    # --- the run's life -------------------------------------------------------------------------------

    def started(self, *, run_id: str, source: str, output: str, model: str, files: int) -> None:
        self.run_id, self.source, self.output = run_id, source, output
        self.counts.start(run_id=run_id, source=source, model=model, files=files)
        self._export()
        if self.lineage:
            from aei_batch.observe.lineage import build_event, emit

            facets = {"model": model, "files": files}
            emit(
                self.lineage, build_event("START", run_id=run_id, source=source, output=output, facets=facets)
            )
        self._line(force=True)

    def batch_done(
        self,
        predictions: pa.Table,
        *,
        decode_seconds: float | None = None,
        model_seconds: float | None = None,
    ) -> None:
        """Count one batch of predictions rows (error rows included)."""
        try:
            c = self.counts.add_batch(predictions, decode_seconds=decode_seconds, model_seconds=model_seconds)
            ray_metrics = self._ray()
            if ray_metrics is not None:
                ray_metrics.record(c, self.counts.files)
        except Exception as exc:  # noqa: BLE001 - watching never breaks the run
            log.warning("metrics: batch not counted: %s: %s", type(exc).__name__, exc)
        first = self.counts.done == predictions.num_rows
        self._export(final=first)  # the first batch shows at once
        self._line(force=first)

    def completed(self, summary: RunSummary) -> None:
        """The run committed: final metrics, the summary JSON, COMPLETE, the hook (once)."""
        self._ended = True
        self.counts.finish("completed")
        self._export(final=True)
        self._line(
            force=True,
            msg=f"scored {summary.files} files: {summary.scored} ok, {summary.errors} errors, "
            f"{summary.files_per_s:.1f} files/s (run {summary.run_id})",
        )
        data = summary.to_dict()
        data["output"] = self.output
        self._write_summary(summary.run_id, data)
        if self.lineage:
            from aei_batch.observe.lineage import build_event, emit

            facets = {"summary": summary.snapshot_properties()}
            emit(
                self.lineage,
                build_event(
                    "COMPLETE",
                    run_id=summary.run_id,
                    source=summary.source,
                    output=self.output or "",
                    facets=facets,
                ),
            )
        self._fire(data)

    def failed(self, run_id: str | None, exc: BaseException) -> None:
        """The run ended without a commit (or before it started): FAIL, final metrics, the hook (once)."""
        if self._ended:
            return
        self._ended = True
        run_id = run_id or self.run_id
        self.counts.finish("failed")
        self._export(final=True)
        data = {
            "run_id": run_id,
            "status": "failed",
            "source": self.source,
            "output": self.output,
            "exit_code": _exit_code(exc),
            "error": _message(exc),
            "files": self.counts.files,
            "files_done": self.counts.done,
        }
        if run_id:
            self._write_summary(run_id, data)
            if self.lineage:
                from aei_batch.observe.lineage import build_event, emit

                emit(
                    self.lineage,
                    build_event(
                        "FAIL", run_id=run_id, source=self.source, output=self.output or "", error=exc
                    ),
                )
        self._fire(data)

    def close(self) -> None:
        if self.exporter is not None:
            self.exporter.close()
            self.exporter = None

    def __enter__(self) -> RunObserver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- helpers ------------------------------------------------------------------------------------

    def _export(self, *, final: bool = False) -> None:
        if self.exporter is not None:
            self.exporter.update(final=final)

    def _ray(self) -> RayMetrics | None:
        if self._ray_checked:
            return self.ray_metrics
        from aei_batch.observe.metrics import RayMetrics

        if RayMetrics.connected():
            self._ray_checked = True
            try:
                self.ray_metrics = RayMetrics()
            except Exception as exc:  # noqa: BLE001
                log.warning("metrics: Ray metrics unavailable: %s", exc)
        return self.ray_metrics

    def _write_summary(self, run_id: str, data: dict[str, Any]) -> None:
        if not self.write_summary or not self.output:
            return
        from aei_batch.io.security import redact
        from aei_batch.observe.runfile import write_run_summary

        try:
            self.summary_uri = write_run_summary(self.output, run_id, data)
        except Exception as exc:  # noqa: BLE001 - the table is committed; the summary is a courtesy
            log.warning("run summary not written: %s", redact(f"{type(exc).__name__}: {exc}"))

    def _fire(self, data: dict[str, Any]) -> None:
        if self.on_complete is None or self._fired:
            return
        self._fired = True  # before the call: a hook that hangs or raises is still called only once
        from aei_batch.observe.hooks import fire

        fire(self.on_complete, data, self.summary_uri)

    def _line(self, *, force: bool = False, msg: str | None = None) -> None:
        """A progress line (at most every AEI_PROGRESS_INTERVAL_S, 10 s) for logs without a terminal."""
        if not self.progress_lines:
            return
        now = time.monotonic()
        if not force and now - self._last_line < PROGRESS_INTERVAL_S:
            return
        self._last_line = now
        c = self.counts
        if msg is None:
            share = f" ({c.done / c.files:.0%})" if c.files else ""
            errors = sum(c.errors.values())
            msg = f"scoring: {c.done}/{c.files} files{share}, {errors} errors, {c.files_per_s:.1f} files/s"
        if logging.getLogger().handlers:
            progress_log.setLevel(logging.INFO)
            progress_log.info(msg, extra={"run_id": c.run_id, "files_done": c.done, "files": c.files})
        else:
            print(msg, file=sys.stderr, flush=True)


def _exit_code(exc: BaseException) -> int:
    """What the process exits with for `exc`: an AeiError's code, 130 for Ctrl-C, SystemExit's (143 on
    SIGTERM), else 1."""
    if isinstance(exc, KeyboardInterrupt):
        return 130
    if isinstance(exc, SystemExit):
        return exc.code if isinstance(exc.code, int) else 1
    return int(getattr(exc, "exit_code", 1))


def _message(exc: BaseException) -> str:
    from aei_batch.io.security import redact

    return redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
