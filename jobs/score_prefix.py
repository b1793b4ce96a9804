"""Ray job entrypoint: score one folder, s3:// prefix or manifest described by a YAML config.

    ray job submit --address http://HEAD:8265 --working-dir . -- \\
        python -m jobs.score_prefix --config jobs/configs/score.example.yaml [SOURCE] [score options]

The config's keys are the options of `aei-batch score`; options given here win. The work is done by
`aei-batch score --config CONFIG --no-progress ...`, so the job exits with the CLI's exit codes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def parse_args(argv: Sequence[str]) -> tuple[Path, list[str]]:
    """--config (required) and the remaining `aei-batch score` arguments."""
    parser = argparse.ArgumentParser(prog="python -m jobs.score_prefix", description=__doc__.splitlines()[0])
    parser.add_argument("--config", "-c", type=Path, required=True, help="YAML of `aei-batch score` options")
    ns, rest = parser.parse_known_args(list(argv))
    return ns.config, rest


def cli_args(argv: Sequence[str]) -> list[str]:
    """The `aei-batch` arguments this job runs."""
    config, rest = parse_args(argv)
    return ["score", "--config", str(config), "--no-progress", *rest]


def main(argv: Sequence[str] | None = None) -> None:
    """Run the scoring job; exits with `aei-batch score`'s exit code."""
    from aei_batch.cli import app

    app(cli_args(sys.argv[1:] if argv is None else argv), prog_name="aei-batch")


if __name__ == "__main__":
    main()
