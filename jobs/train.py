"""Ray job entrypoint: train models from a YAML config (keys = options of `aei-batch train`).

    ray job submit --address http://HEAD:8265 --working-dir . -- \\
        python -m jobs.train --config jobs/configs/train.example.yaml [train options]

The config is folded into `aei-batch train`'s arguments with the same
code as `aei-batch submit train --config` (aei_batch.cli.command_args; options given here win).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def cli_args(argv: Sequence[str]) -> list[str]:
    """The `aei-batch` arguments this job runs (raises ConfigError for a config key `train` lacks)."""
    from aei_batch.cli import command_args
    from aei_batch.submit import load_config

    parser = argparse.ArgumentParser(prog="python -m jobs.train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", "-c", type=Path, required=True, help="YAML of `aei-batch train` options")
    ns, rest = parser.parse_known_args(list(argv))
    args = command_args("train", rest, load_config(ns.config))
    return ["train", *args, "--no-progress"]


def main(argv: Sequence[str] | None = None) -> None:
    """Run the training job; exits with `aei-batch train`'s exit code."""
    from aei_batch.cli import app
    from aei_batch.errors import AeiError

    try:
        args = cli_args(sys.argv[1:] if argv is None else argv)
    except AeiError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(int(err.exit_code)) from None
    except Exception as exc:  # the CLI parser's usage errors (typer vendors click): shown as the CLI does
        if not hasattr(exc, "show"):
            raise
        exc.show()
        raise SystemExit(getattr(exc, "exit_code", 2)) from None
    app(args, prog_name="aei-batch")


if __name__ == "__main__":
    main()
