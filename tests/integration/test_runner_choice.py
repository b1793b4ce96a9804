"""Runner choice and the process-pool runner: `--runner auto` picks Ray when there is a cluster, else
in-process for small inputs, the process pool for mid-sized ones and embedded local Ray beyond;
`--runner pool` gives the same rows as the in-process runner, one per file, errors included."""

import shutil

import pytest

from aei_batch.errors import ConfigError
from aei_batch.io.sinks.parquet import read_table
from aei_batch.records import COL, STATUS_ERROR
from aei_batch.runtime.runners import (
    AUTO_LOCAL_MAX_BYTES,
    AUTO_LOCAL_MAX_FILES,
    AUTO_POOL_MAX_BYTES,
    AUTO_POOL_MAX_FILES,
    resolve_runner,
)
from aei_batch.scoring.job import ScoreOptions, run_score
from tests.support import media

RUN_SPECIFIC = {COL.run_id, COL.run_date, COL.scored_at}


@pytest.fixture
def no_ray_address(monkeypatch):
    """No cluster named, and Ray seen as not started in this process (another test may have started it)."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray = pytest.importorskip("ray")
    monkeypatch.setattr(ray, "is_initialized", lambda: False)


def test_auto_when_ray_is_up_in_this_process_uses_it(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray = pytest.importorskip("ray")
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    assert resolve_runner("auto", [1000] * 3) == "ray"


def test_auto_small_input_runs_in_process(no_ray_address):
    assert resolve_runner("auto", [100_000] * 10) == "local"
    assert resolve_runner("auto", [None] * 10) == "local"  # unknown sizes count as 1 MiB each


def test_auto_mid_sized_input_without_a_cluster_uses_the_pool(no_ray_address):
    assert resolve_runner("auto", [1000] * AUTO_LOCAL_MAX_FILES) == "pool"  # many files
    assert resolve_runner("auto", [AUTO_LOCAL_MAX_BYTES // 2 + 1] * 2) == "pool"  # few but long files
    assert resolve_runner("auto", [100_000] * (AUTO_POOL_MAX_FILES - 1)) == "pool"


def test_auto_large_input_without_a_cluster_uses_embedded_ray(no_ray_address):
    assert resolve_runner("auto", [1000] * AUTO_POOL_MAX_FILES) == "ray"  # many files
    assert resolve_runner("auto", [AUTO_POOL_MAX_BYTES // 2 + 1] * 2) == "ray"  # few but long files


def test_auto_thresholds_can_be_moved(no_ray_address, monkeypatch):
    monkeypatch.setenv("AEI_AUTO_POOL_MAX_FILES", "0")  # embedded Ray for everything that is not small
    assert resolve_runner("auto", [1000] * AUTO_LOCAL_MAX_FILES) == "ray"
    assert resolve_runner("auto", [1000] * 10) == "local"
    monkeypatch.setenv("AEI_AUTO_LOCAL_MAX_FILES", "0")
    assert resolve_runner("auto", [1000] * 10) == "ray"


def test_auto_with_a_cluster_address_goes_to_ray(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "ray://example:10001")
    assert resolve_runner("auto", [1000]) == "ray"


def test_explicit_runner_is_kept(no_ray_address):
    for runner in ("ray", "pool", "local"):
        assert resolve_runner(runner, [1]) == runner


def test_unknown_runner_fails_fast(tmp_path):
    with pytest.raises(ConfigError, match="unknown runner"):
        ScoreOptions(source=str(tmp_path), model_dir=str(tmp_path), output=str(tmp_path), runner="spark")


def _rows(output):
    rows = read_table(str(output)).to_pylist()
    return {r[COL.uri]: {k: v for k, v in r.items() if k not in RUN_SPECIFIC} for r in rows}


def _score(source, model, output, runner):
    return run_score(
        ScoreOptions(
            source=str(source),
            model_dir=str(model),
            output=str(output),
            runner=runner,
            table_format="parquet",
            progress=False,
            max_error_rate=1.0,
            batch_size=8,
            workers=2,
        )
    )


@pytest.mark.slow
def test_pool_runner_matches_the_in_process_runner(synth_corpus, trained_model, tmp_path):
    source = tmp_path / "in"
    shutil.copytree(synth_corpus, source)
    (source / "Actor_17" / "03-01-05-01-02-01-17.wav").write_bytes(media.random_bytes(2048))  # an error row
    pooled = _score(source, trained_model, tmp_path / "pool", "pool")
    local = _score(source, trained_model, tmp_path / "local", "local")
    assert pooled.files == local.files == 65
    a, b = _rows(tmp_path / "pool"), _rows(tmp_path / "local")
    assert len(a) == 65 and a.keys() == b.keys()
    assert a == b
    bad = a[str(source / "Actor_17" / "03-01-05-01-02-01-17.wav")]
    assert bad[COL.status] == STATUS_ERROR and bad[COL.error_code]


@pytest.mark.ray
def test_a_ray_run_that_fails_before_fan_out_leaves_no_worker_holding_cpus(
    ray_local, synth_corpus, trained_model, tmp_path
):
    """Workers are started early (while the driver lists and loads the model); a run that fails then (here: a
    corrupt model card) must stop them, or they keep the cluster's CPUs and the next run waits forever."""
    import json
    import time

    from aei_batch.errors import ModelError

    bad = tmp_path / "bad-model"
    shutil.copytree(trained_model, bad)
    card = json.loads((bad / "card.json").read_text())
    card["feature_set"]["hash"] = "0" * 16
    (bad / "card.json").write_text(json.dumps(card))
    total = ray_local.cluster_resources()["CPU"]
    kept = []  # the caller keeps the exception (a notebook keeps the last traceback): its frames stay alive
    for runner in ("ray", "auto"):  # auto: Ray is up in this process, so it picks Ray
        with pytest.raises(ModelError) as err:
            run_score(
                ScoreOptions(
                    source=str(synth_corpus), model_dir=str(bad), output=str(tmp_path / "t"), runner=runner
                )
            )
        kept.append(err)
        deadline = time.monotonic() + 30
        while ray_local.available_resources().get("CPU", 0) < total and time.monotonic() < deadline:
            time.sleep(0.5)
        assert ray_local.available_resources().get("CPU", 0) == total, runner
