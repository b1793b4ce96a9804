"""The jobs/ entrypoints run for real (what a Ray job runs), here in-process (`runner: local`) for speed.

The multi-node path (Ray Jobs API, two nodes) is tests/integration/test_multinode.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aei_batch.cli import command_options

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _job(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m jobs.<module> ...` from the repository root, as `ray job submit --working-dir .` runs it."""
    return subprocess.run(
        [sys.executable, "-m", f"jobs.{module}", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def _rows(table: Path) -> list[tuple[str, str]]:
    import duckdb

    rel = duckdb.sql(f"select uri, status from read_parquet('{table}/**/*.parquet', hive_partitioning=false)")
    return sorted(rel.fetchall())


def test_score_prefix_then_nightly_adds_no_duplicates(
    synth_corpus: Path, trained_model: Path, tmp_path: Path
) -> None:
    from aei_batch.io.storage import list_inputs

    table = tmp_path / "table"
    config = tmp_path / "job.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "source": str(synth_corpus),
                "model_dir": str(trained_model),
                "output": str(table),
                "table_format": "parquet",
                "runner": "local",
            }
        )
    )
    listed = sorted(r.uri for r in list_inputs(str(synth_corpus)))

    first = _job("score_prefix", "--config", str(config))
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    rows = _rows(table)
    assert [u for u, _ in rows] == listed and {s for _, s in rows} == {"ok"}

    nightly = _job("nightly", "--config", str(config))
    assert nightly.returncode == 0, nightly.stdout[-2000:] + nightly.stderr[-3000:]
    if "--incremental" not in command_options("score"):
        pytest.skip("this aei_batch's score has no --incremental yet: nightly rescored everything")
    assert "warning" not in nightly.stderr
    assert [u for u, _ in _rows(table)] == listed  # nothing new was scored, nothing duplicated


def test_job_exit_codes_are_the_cli_exit_codes(trained_model: Path, tmp_path: Path) -> None:
    config = tmp_path / "job.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "source": str(tmp_path / "missing"),
                "model_dir": str(trained_model),
                "output": str(tmp_path / "t"),
                "table_format": "parquet",
                "runner": "local",
            }
        )
    )
    res = _job("score_prefix", "--config", str(config))
    assert res.returncode == 5, res.stderr  # INPUT_NOT_FOUND
    bad = tmp_path / "train.yaml"
    bad.write_text("data: /d\nmodel_dir: /m\nno_such_key: 3\n")
    res = _job("train", "--config", str(bad))
    assert res.returncode == 4 and "'no_such_key' is not an option of `aei-batch train`" in res.stderr, (
        res.stderr
    )
    res = _job("train", "--config", str(bad.with_name("none.yaml")))
    assert res.returncode == 4 and "cannot read config" in res.stderr, res.stderr
    res = _job("score_prefix")
    assert res.returncode == 2 and "--config" in res.stderr  # argparse: the config is required
