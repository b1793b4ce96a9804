"""`--on-complete`: tell someone when a run ends, once, with its summary JSON.

The target is an http(s) URL (the summary is POSTed as `application/json`) or a command (run without a
shell, the summary on its standard input, `AEI_RUN_ID`, `AEI_RUN_STATUS` and `AEI_RUN_SUMMARY` — the
summary file's location — in its environment). A hook that fails is logged as a warning: the run's rows
are committed by then and its exit code stays what the run decided.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from aei_batch.errors import ConfigError

log = logging.getLogger(__name__)

HOOK_TIMEOUT_S = float(os.environ.get("AEI_HOOK_TIMEOUT_S", "60"))
_POST_ATTEMPTS = 3


def is_url(target: str) -> bool:
    return target.startswith(("http://", "https://"))


def check_target(target: str, option: str = "--on-complete") -> str:
    """Fail fast (ConfigError, exit 4) on a target that cannot work; returns it stripped."""
    target = target.strip()
    if not target:
        raise ConfigError(f"{option} is empty", hint="give an http(s) URL or a command")
    if is_url(target):
        if not urlsplit(target).hostname:
            raise ConfigError(f"{option} URL has no host: {target!r}")
        return target
    try:
        argv = shlex.split(target)
    except ValueError as exc:
        raise ConfigError(f"{option} command cannot be parsed: {exc}") from None
    if not argv or shutil.which(argv[0]) is None:
        raise ConfigError(
            f"{option} command {argv[0] if argv else target!r} was not found",
            hint="give the program's path, or an http(s) URL",
        )
    return target


def post_json(url: str, data: dict[str, Any], *, timeout: float = HOOK_TIMEOUT_S) -> int:
    """POST `data` as JSON; retried on connection errors and 5xx answers. Returns the HTTP status."""
    body = json.dumps(data, default=str).encode()
    last: Exception | None = None
    for attempt in range(_POST_ATTEMPTS):
        req = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - the user's URL
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                raise
            last = exc
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        time.sleep(0.5 * 2**attempt)
    assert last is not None
    raise last


def run_command(
    target: str, data: dict[str, Any], env: dict[str, str], *, timeout: float = HOOK_TIMEOUT_S
) -> int:
    """Run the hook command with the JSON on stdin; returns its exit status."""
    proc = subprocess.run(  # noqa: S603 - the user's own command, no shell
        shlex.split(target),
        input=json.dumps(data, default=str).encode(),
        env={**os.environ, **env},
        timeout=timeout,
        check=False,
        capture_output=True,
    )
    if proc.returncode:
        log.warning(
            "on-complete command exited %d: %s", proc.returncode, proc.stderr.decode(errors="replace")[-500:]
        )
    return proc.returncode


def fire(target: str, data: dict[str, Any], summary_uri: str | None) -> bool:
    """Call the hook once; True when it reported success. Never raises."""
    from aei_batch.io.security import redact

    try:
        if is_url(target):
            post_json(target, data)
        else:
            env = {
                "AEI_RUN_ID": str(data.get("run_id") or ""),
                "AEI_RUN_STATUS": str(data.get("status") or ""),
                "AEI_RUN_SUMMARY": summary_uri or "",
            }
            return run_command(target, data, env) == 0
    except Exception as exc:  # noqa: BLE001 - a hook never changes the run's outcome
        log.warning("on-complete hook failed: %s", redact(f"{type(exc).__name__}: {exc}"))
        return False
    return True
