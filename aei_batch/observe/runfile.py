"""The run summary JSON beside the table: `<output>/_runs/<run_id>.json` (local folder or s3://).

Readers of the table skip `_`-prefixed folders, so the file never shows up as data. Local files are
written to a temporary name and renamed (a reader never sees half a file); on S3 one PUT is atomic.
"""

from __future__ import annotations

import json
from typing import Any

RUNS_DIR = "_runs"


def run_summary_uri(output: str, run_id: str) -> str:
    """Where the summary of run `run_id` of the table at `output` goes."""
    if not run_id or "/" in run_id or run_id.startswith("."):
        raise ValueError(f"not a run id: {run_id!r}")
    return f"{output.rstrip('/')}/{RUNS_DIR}/{run_id}.json"


def write_run_summary(output: str, run_id: str, data: dict[str, Any]) -> str:
    """Write `data` as the run's summary JSON (one atomic publish); returns its location. Raises AeiError."""
    from aei_batch.io import storage

    uri = run_summary_uri(output, run_id)
    body = (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode()
    tmp = storage.temp_dir("aei-run-") / f"{run_id}.json"
    try:
        tmp.write_bytes(body)
        return storage.publish(tmp, uri)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.parent.rmdir()


def read_run_summary(output: str, run_id: str | None = None) -> dict[str, Any]:
    """The summary JSON of run `run_id` (default: the newest run) of the table at `output`.

    Raises:
        InputNotFoundError: no run summary under `<output>/_runs/` (or none for `run_id`).
    """
    from aei_batch.errors import InputNotFoundError
    from aei_batch.io import storage

    if run_id is None:
        ids = list_run_ids(output)
        if not ids:
            raise InputNotFoundError(
                f"no run summaries under {output.rstrip('/')}/{RUNS_DIR}/",
                hint="run `aei-batch score ... --output` on this location first",
            )
        run_id = ids[-1]  # run ids start with their UTC start time: the last sorts newest
    uri = run_summary_uri(output, run_id)
    if not storage.exists(uri):
        raise InputNotFoundError(f"no run summary {uri}")
    data: dict[str, Any] = json.loads(storage.read_bytes(uri))
    return data


def list_run_ids(output: str) -> list[str]:
    """The run ids that have a summary under `<output>/_runs/`, oldest first."""
    from aei_batch.io import storage

    names = storage.list_files(storage.join(output, RUNS_DIR))
    return sorted(n[: -len(".json")] for n in names if n.endswith(".json") and "/" not in n)
