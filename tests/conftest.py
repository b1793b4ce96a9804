"""Shared fixtures: a real SeaweedFS S3 server (tests/support/fixtures.py), generated corpora, local Ray."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.fixtures import *  # noqa: F401,F403

# Quiet, local-only Ray for tests: no token auth warnings, no usage stats, no dashboard.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DISABLE_DOCKER_CPU_WARNING", "1")


@pytest.fixture(scope="session")
def synth_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic RAVDESS-named corpus: actors 17-24, 8 emotions, 1 statement (64 clips of 1.2 s)."""
    from aei_batch.synth import make_corpus

    root = tmp_path_factory.mktemp("corpus")
    make_corpus(root, statements=(1,), seconds=1.2)
    return root


@pytest.fixture(scope="session")
def trained_model(synth_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seed models trained on actors 17-20 of the synthetic corpus (in-process runner: fast, no Ray)."""
    from aei_batch.training.train import TrainOptions, run_train

    model_dir = tmp_path_factory.mktemp("model")
    run_train(
        TrainOptions(
            data=str(synth_corpus),
            model_dir=str(model_dir),
            holdout_actors=[21, 22, 23, 24],
            runner="local",
            progress=False,
        )
    )
    return model_dir


@pytest.fixture(scope="session")
def ray_local(s3_server):
    """One embedded local Ray for the whole session (2 CPUs), shut down at the end.

    Ray workers inherit the driver's environment when Ray starts, so the test S3 server's endpoint and
    credentials are exported for the whole session first (as a user's shell would have them).
    """
    import ray

    from aei_batch.runtime.ray_backend import ensure_ray, shutdown_owned

    os.environ.update(s3_server.env())
    ensure_ray(num_cpus=2)
    yield ray
    shutdown_owned()  # what the CLI calls: stops the autoscaler monitor first (1 s faster)
