"""OpenLineage run events (START, COMPLETE, FAIL) for a scoring run, to a JSON-lines file or an HTTP endpoint.

`--lineage PATH` appends one event per line; `--lineage http(s)://HOST[:PORT][/PATH]` POSTs each event
(to `/api/v1/lineage` when the URL has no path, the OpenLineage HTTP transport's default). Events follow
the OpenLineage 2-0-2 RunEvent object: the run's id is a UUID derived from aei_batch's run id (the
original is kept in the `aei_run` run facet), the job is `<namespace>.score`, the input is the source
location and the output the table location, named by OpenLineage's dataset naming (`s3://bucket` + key,
`file` + absolute path). No registry package ships OpenLineage's JSON schema (openlineage-python carries
generated classes only), so tests check the spec's required fields and formats (docs/OBSERVE.md).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aei_batch._version import __version__

log = logging.getLogger(__name__)

SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
ERROR_FACET_SCHEMA = (
    "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"
)
PRODUCER = f"urn:aei-batch:{__version__}"
AEI_FACET_SCHEMA = f"urn:aei-batch:{__version__}:facets:aei_run"
DEFAULT_PATH = "/api/v1/lineage"


def lineage_run_id(run_id: str) -> str:
    """A stable UUID for aei_batch's run id (OpenLineage wants a UUID; ours is `<UTC time>-<8 hex>`)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"aei-batch:run:{run_id}"))


def dataset(location: str) -> dict[str, Any]:
    """OpenLineage dataset naming for a folder / s3:// prefix / manifest."""
    if location.startswith("s3://"):
        bucket, _, key = location[len("s3://") :].partition("/")
        return {"namespace": f"s3://{bucket}", "name": key.rstrip("/") or "/"}
    return {"namespace": "file", "name": str(Path(location).expanduser().absolute())}


def build_event(
    event_type: str,
    *,
    run_id: str,
    source: str,
    output: str,
    facets: dict[str, Any] | None = None,
    error: BaseException | None = None,
) -> dict[str, Any]:
    """One RunEvent (`event_type` START, COMPLETE or FAIL)."""
    run_facets: dict[str, Any] = {
        "aei_run": {"_producer": PRODUCER, "_schemaURL": AEI_FACET_SCHEMA, "runId": run_id, **(facets or {})}
    }
    if error is not None:
        run_facets["errorMessage"] = {
            "_producer": PRODUCER,
            "_schemaURL": ERROR_FACET_SCHEMA,
            "message": str(error) or type(error).__name__,
            "programmingLanguage": "python",
        }
    return {
        "eventType": event_type,
        "eventTime": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
        "run": {"runId": lineage_run_id(run_id), "facets": run_facets},
        "job": {"namespace": os.environ.get("AEI_LINEAGE_NAMESPACE", "aei-batch"), "name": "score"},
        "inputs": [dataset(source)],
        "outputs": [dataset(output)],
    }


def check_target(target: str) -> str:
    """Fail fast on a lineage target that cannot work (ConfigError)."""
    from aei_batch.errors import ConfigError

    target = target.strip()
    if not target:
        raise ConfigError("--lineage is empty", hint="give a .jsonl path or an http(s) URL")
    if target.startswith(("http://", "https://")):
        return target
    if target.startswith("s3://"):
        raise ConfigError("--lineage must be a local file or an http(s) URL, not s3://")
    if not Path(target).expanduser().parent.is_dir():
        raise ConfigError(f"--lineage: folder {Path(target).parent} does not exist", hint="create it")
    return target


def endpoint(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.path in ("", "/"):
        parts = parts._replace(path=DEFAULT_PATH)
    return urlunsplit(parts)


def emit(target: str, event: dict[str, Any]) -> None:
    """Send one event; failures are logged, never raised (lineage never fails a run)."""
    from aei_batch.io.security import redact

    try:
        if target.startswith(("http://", "https://")):
            from aei_batch.observe.hooks import post_json

            post_json(endpoint(target), event, timeout=30)
        else:
            with open(Path(target).expanduser(), "a", encoding="utf-8") as fh:
                fh.write(json.dumps(event, default=str) + "\n")
    except Exception as exc:  # noqa: BLE001
        log.warning(
            "lineage %s event not sent: %s", event.get("eventType"), redact(f"{type(exc).__name__}: {exc}")
        )
