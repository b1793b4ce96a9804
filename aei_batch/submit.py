"""`aei-batch submit`: run `aei-batch score` / `aei-batch train` on a running Ray cluster (Ray Jobs API).

The command line (`aei_batch.cli`: `job_args`) first validates the arguments with the very parser of the
target command and checks a local YAML config with the command's options model; this module ships the
config with them (the file does not exist on the cluster: the command gets its text as a here-document on
`--config /dev/stdin`) and submits the entrypoint `python -m aei_batch.cli <command> <args>` with a unique
submission id. (It never imports the CLI: the CLI imports it.) It then follows the job's logs
and exits with the job's outcome: 0 when it SUCCEEDED, `ExitCode.JOB_FAILED` (9) when it FAILED or was
STOPPED (the job's own exit code is named in the message).

Only `ray.job_submission` is needed here; it is imported inside functions (`aei-batch --help` stays instant).
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from aei_batch.config import SubmitOptions as SubmitOptions
from aei_batch.errors import ConfigError, JobFailedError

SUBMITTABLE = ("score", "train")
ADDRESS_ENV = "RAY_ADDRESS"
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_ENV_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def new_submission_id(command: str, now: datetime | None = None, token: str | None = None) -> str:
    """A unique, sortable id: `aei-<command>-<UTC yyyymmddThhmmssZ>-<8 hex>`."""
    now = now or datetime.now(UTC)
    return f"aei-{command}-{now:%Y%m%dT%H%M%SZ}-{token or secrets.token_hex(4)}"


def check_submission_id(submission_id: str) -> str:
    """Refuse ids that would be awkward in URLs, log paths and `ray job` commands."""
    if not _ID_RE.fullmatch(submission_id):
        raise ConfigError(
            f"invalid --submission-id {submission_id!r}",
            hint="use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return submission_id


def resolve_address(address: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """The Ray dashboard (Jobs API) address from --address or RAY_ADDRESS; http:// is added when bare."""
    addr = (address or environ.get(ADDRESS_ENV) or "").strip()
    if not addr:
        raise ConfigError(
            "no Ray cluster address",
            hint="pass --address http://HEAD:8265 or set RAY_ADDRESS to the dashboard address",
        )
    if "://" not in addr:
        addr = f"http://{addr}"
    return addr


def load_config(path: Path | None) -> dict[str, Any]:
    """A local YAML mapping of option names to values (empty when no path)."""
    return parse_config(read_config_text(path), path) if path is not None else {}


def read_config_text(path: Path) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc}", hint="pass an existing YAML file") from None


def parse_config(text: str, path: Path | str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}", hint="fix the YAML syntax") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping of option names to values")
    return data


def build_entrypoint(command: str, args: Sequence[str], config_text: str | None = None) -> str:
    """The shell command the cluster runs (the job driver): the same CLI, quoted for the shell.

    A config travels inside the command as a quoted here-document read through `--config /dev/stdin`
    (no file upload, nothing expanded by the shell).
    """
    line = shlex.join(["python", "-m", "aei_batch.cli", command, *args])
    if config_text is None:
        return line
    lines = config_text.rstrip("\n").splitlines()
    delim = "AEI_JOB_CONFIG"
    while delim in lines:
        delim += "_" + secrets.token_hex(2)
    body = "\n".join(lines)
    return f"{line} --config /dev/stdin <<'{delim}'\n{body}\n{delim}"


def build_runtime_env(
    working_dir: str | None, env_keys: Sequence[str], environ: Mapping[str, str] = os.environ
) -> dict[str, Any]:
    """runtime_env: an optional working dir and the named local env vars (values never printed)."""
    renv: dict[str, Any] = {}
    if working_dir:
        if "://" not in working_dir and not Path(working_dir).is_dir():
            raise ConfigError(
                f"--working-dir {working_dir} is not a directory",
                hint="pass a local folder (uploaded to the cluster) or a remote .zip URI",
            )
        renv["working_dir"] = working_dir
    env_vars: dict[str, str] = {}
    for key in env_keys:
        if not _ENV_KEY_RE.fullmatch(key):
            raise ConfigError(
                f"--env takes a variable NAME, got {key!r}",
                hint="pass --env AWS_ENDPOINT_URL (the value is read from your environment)",
            )
        if key not in environ:
            raise ConfigError(
                f"--env {key}: the variable is not set here", hint=f"export {key} before submitting"
            )
        env_vars[key] = environ[key]
    if env_vars:
        renv["env_vars"] = env_vars
    return renv


@dataclass
class JobOutcome:
    submission_id: str
    status: str
    message: str | None = None
    exit_code: int | None = None


def _client(address: str) -> Any:
    import logging

    from ray.job_submission import JobSubmissionClient

    for name in (
        "ray",
        "ray.dashboard.modules.job.sdk",
        "ray.dashboard.modules.dashboard_sdk",
        "ray._private.runtime_env.packaging",
    ):  # upload/websocket chatter; the job's logs follow
        logging.getLogger(name).setLevel(logging.WARNING)

    try:
        return JobSubmissionClient(address)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(
            f"cannot reach the Ray Jobs API at {address}: {str(exc).splitlines()[0][:300]}",
            hint="check --address / RAY_ADDRESS (the dashboard, usually http://HEAD:8265)",
        ) from None


async def _tail(client: Any, submission_id: str, out: IO[str]) -> None:
    async for chunk in client.tail_job_logs(submission_id):
        out.write(chunk)
        out.flush()


def wait_for_outcome(client: Any, submission_id: str, poll_s: float = 1.0) -> JobOutcome:
    """Poll until the job is terminal; its status, message and driver exit code."""
    while True:
        info = client.get_job_info(submission_id)
        status = str(getattr(info.status, "value", info.status))
        if status in _TERMINAL:
            return JobOutcome(submission_id, status, info.message, info.driver_exit_code)
        time.sleep(poll_s)


def raise_for_outcome(outcome: JobOutcome) -> None:
    """A FAILED or STOPPED job raises JobFailedError (exit 9), naming the job's own exit code."""
    if outcome.status == "SUCCEEDED":
        return
    code = f" (job exit code {outcome.exit_code})" if outcome.exit_code is not None else ""
    lines = (outcome.message or "").strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("error:")]  # the CLI's own message, when the logs hold it
    detail = f": {(errors or lines or [''])[-1][:300]}" if lines else ""
    raise JobFailedError(
        f"Ray job {outcome.submission_id} {outcome.status}{code}{detail}",
        hint=f"see the logs above, or `ray job logs {outcome.submission_id}`",
    )


def submit(opts: SubmitOptions, out: IO[str] = sys.stdout, err: IO[str] = sys.stderr) -> int:
    """Submit, follow the logs to `out`, return 0 on success; raise JobFailedError on failure."""
    address = resolve_address(opts.address)
    sid = check_submission_id(opts.submission_id) if opts.submission_id else new_submission_id(opts.command)
    config_text = opts.config_text
    entrypoint = build_entrypoint(opts.command, opts.args, config_text)
    runtime_env = build_runtime_env(opts.working_dir, opts.env_keys)
    client = _client(address)
    from aei_batch._version import __version__

    try:
        client.submit_job(
            entrypoint=entrypoint,
            submission_id=sid,
            runtime_env=runtime_env or None,
            metadata={"aei_batch_command": opts.command, "aei_batch_version": __version__},
        )
    except RuntimeError as exc:  # the Jobs API answered with an error (e.g. the id is taken)
        raise ConfigError(
            f"the cluster refused the job: {str(exc)[:300]}",
            hint="pick another --submission-id, or check the cluster's logs",
        ) from None
    shown = entrypoint.splitlines()[0] + (" (+ the config's lines)" if config_text is not None else "")
    print(f"submitted {sid} to {address}\n  entrypoint: {shown}", file=err, flush=True)
    if not opts.wait:
        print(sid, file=out, flush=True)
        return 0
    try:
        asyncio.run(_tail(client, sid, out))
        outcome = wait_for_outcome(client, sid)
    except KeyboardInterrupt:
        print(
            f"\nstopped following; the job keeps running. Stop it: ray job stop --address {address} {sid}",
            file=err,
            flush=True,
        )
        return 130
    print(f"job {sid}: {outcome.status}", file=err, flush=True)
    raise_for_outcome(outcome)
    return 0
