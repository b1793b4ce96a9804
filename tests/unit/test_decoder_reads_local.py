"""A local file is read by the decoder child itself (aei_batch.features.clip.read_decode_and_extract): its
bytes never cross the worker's pipe. The vector must be the one the bytes give, and read problems must
keep the codes and messages of a read in the worker (`aei_batch.scoring.inputs.fetch`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aei_batch.errors import ErrorCode, FileError
from aei_batch.features.clip import decode_and_extract, read_decode_and_extract
from aei_batch.scoring.clip import ClipFeaturiser
from aei_batch.scoring.inputs import fetch
from aei_batch.scoring.rows import RunContext
from tests.support import media as M


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "03-01-05-01-02-01-07.wav"
    path.write_bytes(M.noise_wav_bytes(seconds=1.5, seed=3))
    return path


def _ctx(tmp_path: Path, **kw: object) -> RunContext:
    return RunContext.new(str(tmp_path), **kw)  # type: ignore[arg-type]


def _read(path: Path | str, max_bytes: int | None = None) -> tuple[np.ndarray, float]:
    return read_decode_and_extract(
        str(path), str(path), "seed_mfcc157", sr=22050, max_duration_s=None, max_bytes=max_bytes
    )


def test_reading_in_the_child_gives_the_vector_of_the_bytes(clip: Path) -> None:
    by_path = _read(clip)
    by_bytes = decode_and_extract(clip.read_bytes(), str(clip), "seed_mfcc157", sr=22050, max_duration_s=None)
    assert np.array_equal(by_path[0], by_bytes[0]) and by_path[1] == by_bytes[1]


def test_missing_and_oversized_files_keep_their_codes_and_messages(clip: Path, tmp_path: Path) -> None:
    ref = {"uri": str(tmp_path / "gone.wav"), "size": None}
    with pytest.raises(FileError) as in_child:
        _read(ref["uri"])
    with pytest.raises(FileError) as in_worker:
        fetch(ref, _ctx(tmp_path))
    assert in_child.value.code == in_worker.value.code == ErrorCode.READ_FAILED
    assert in_child.value.message == in_worker.value.message
    assert "FileNotFoundError" in in_child.value.message
    with pytest.raises(FileError) as big:
        _read(clip, max_bytes=100)
    assert big.value.code == ErrorCode.FILE_TOO_LARGE


def test_the_watchdog_stage_reads_local_files_in_its_child(clip: Path, tmp_path: Path) -> None:
    """Through ClipFeaturiser with a decode timeout (a real child process): same vector as in-process, and a
    file deleted after listing becomes READ_FAILED, raised in the child and carried back."""
    in_process = ClipFeaturiser("seed_mfcc157", _ctx(tmp_path)).featurise({"uri": str(clip), "size": None})
    stage = ClipFeaturiser("seed_mfcc157", _ctx(tmp_path, decode_timeout_s=30.0))
    try:
        in_child = stage.featurise({"uri": str(clip), "size": clip.stat().st_size})
        assert stage.decoder.child_pid is not None
        assert np.array_equal(in_child[0], in_process[0])
        gone = tmp_path / "gone.wav"
        with pytest.raises(FileError) as err:
            stage.featurise({"uri": str(gone), "size": 1000})
        assert err.value.code == ErrorCode.READ_FAILED
    finally:
        stage.decoder.close()
    small = ClipFeaturiser("seed_mfcc157", _ctx(tmp_path, decode_timeout_s=30.0, max_file_bytes=100))
    try:
        with pytest.raises(FileError) as err:  # no listed size: the limit holds in the child's read
            small.featurise({"uri": str(clip), "size": None})
        assert err.value.code == ErrorCode.FILE_TOO_LARGE
    finally:
        small.decoder.close()
