"""Ray job entrypoint: the nightly incremental scoring run.

    ray job submit --address http://HEAD:8265 --working-dir . -- \\
        python -m jobs.nightly --config jobs/configs/nightly.example.yaml [--run-date YYYY-MM-DD]

The same as `jobs.score_prefix`, plus `--incremental` (score only files not yet scored with this model)
and the run date (default: today, UTC). Each is passed only if this aei_batch's `score` has the option:
without `--incremental` every listed file is scored again (a warning says so); asking for a run date the
CLI cannot take is a configuration error (exit 4).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path


def _run_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from None


def cli_args(argv: Sequence[str], supported: set[str] | None = None) -> list[str]:
    """The `aei-batch` arguments of tonight's run; `supported` = score's long options (default: asked)."""
    from aei_batch.cli import command_options
    from aei_batch.errors import ConfigError

    parser = argparse.ArgumentParser(prog="python -m jobs.nightly", description=__doc__.splitlines()[0])
    parser.add_argument("--config", "-c", type=Path, required=True, help="YAML of `aei-batch score` options")
    parser.add_argument("--run-date", type=_run_date, default=None, help="YYYY-MM-DD (default: today, UTC)")
    ns, rest = parser.parse_known_args(list(argv))
    opts = command_options("score") if supported is None else supported
    args = ["score", "--config", str(ns.config), "--no-progress"]
    if "--incremental" in opts:
        args.append("--incremental")
    else:
        print(
            "warning: this aei_batch's `score` has no --incremental: every listed file is scored again",
            file=sys.stderr,
        )
    if "--run-date" in opts:
        args += ["--run-date", (ns.run_date or datetime.now(UTC).date()).isoformat()]
    elif ns.run_date is not None:
        raise ConfigError(
            "--run-date was given but this aei_batch's `score` cannot take it",
            hint="drop --run-date (the run is dated today, UTC) or upgrade aei_batch",
        )
    return [*args, *rest]


def main(argv: Sequence[str] | None = None) -> None:
    """Run tonight's scoring; exits with `aei-batch score`'s exit code."""
    from aei_batch.cli import app
    from aei_batch.errors import AeiError

    try:
        args = cli_args(sys.argv[1:] if argv is None else argv)
    except AeiError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(int(err.exit_code)) from None
    app(args, prog_name="aei-batch")


if __name__ == "__main__":
    main()
