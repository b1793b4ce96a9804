"""Broken model cards are ModelError (exit 7) with a message, never a traceback or wrong predictions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aei_batch.errors import ExitCode, ModelError
from aei_batch.models.loader import load_model


def _edited(trained_model: Path, tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    d = Path(shutil.copytree(trained_model, tmp_path / "m"))
    card = json.loads((d / "card.json").read_text())
    edit(card)
    (d / "card.json").write_text(json.dumps(card))
    return d


def _speaker_adaptive(dim: int | None) -> Callable[[dict[str, Any]], None]:
    def edit(card: dict[str, Any]) -> None:
        n = card["feature_set"]["dim"] if dim is None else dim
        card["options"] = {"speaker_adaptive": True, "global_stats": {"mean": [0.0] * n, "std": [1.0] * n}}

    return edit


CASES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "feature_set null": (lambda c: c.update(feature_set=None), "feature_set is null"),
    "options null": (lambda c: c.update(options=None), "options is null"),
    "unknown feature set": (lambda c: c["feature_set"].update(name="no_such_set"), "'no_such_set'"),
    "global_stats too short": (_speaker_adaptive(10), "shape mean \\(10,\\)"),
    "global_stats missing": (
        lambda c: c.update(options={"speaker_adaptive": True}),
        "no options.global_stats",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_cards_are_model_errors(case: str, trained_model: Path, tmp_path: Path) -> None:
    edit, message = CASES[case]
    with pytest.raises(ModelError, match=message) as info:
        load_model(str(_edited(trained_model, tmp_path, edit)))
    assert info.value.exit_code == ExitCode.MODEL and info.value.hint


def test_right_global_stats_load_and_predict(trained_model: Path, tmp_path: Path) -> None:
    model = load_model(str(_edited(trained_model, tmp_path, _speaker_adaptive(None))))
    proba = model.predict_proba8(np.zeros((2, model.feature_set.dim), dtype=np.float32))
    assert proba.shape == (2, 8)


def test_cli_exits_7_without_traceback_for_a_null_feature_set(trained_model: Path, tmp_path: Path) -> None:
    from tests.support import media as M

    model = _edited(trained_model, tmp_path, lambda c: c.update(feature_set=None))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.wav").write_bytes(M.noise_wav_bytes(seconds=1.0))
    exe = Path(sys.executable).with_name("aei-batch")
    cmd = [str(exe), "score", str(tmp_path / "in"), "-m", str(model), "-o", str(tmp_path / "out")]
    proc = subprocess.run(
        [*cmd, "--runner", "local", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
    )
    assert proc.returncode == ExitCode.MODEL, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "feature_set" in proc.stderr
    assert not (tmp_path / "out").exists()
