"""How the runners size their work: the automatic batch size, and FileRef's footprint."""

from __future__ import annotations

import pickle

import pytest

from aei_batch.records import FileRef
from aei_batch.runtime.runners import AUTO_BATCH_MAX, AUTO_BATCH_MIN, auto_batch_size
from aei_batch.scoring.job import ScoreOptions


@pytest.mark.parametrize(
    ("n", "size", "expected"),
    [
        (10, 100_000, AUTO_BATCH_MIN),  # a few files: small batches, every worker gets some
        (1_200, 100_000, 18),  # RAVDESS-sized run: n / 64
        (2_048, 100_000, 32),
        (20_000, 16_000, AUTO_BATCH_MAX),  # thousands of short files: the cap
        (20_000, 50 << 20, AUTO_BATCH_MIN),  # long recordings: big outputs per file, keep 16
        (20_000, None, AUTO_BATCH_MAX),  # sizes unknown (manifest without sizes)
    ],
)
def test_auto_batch_size(n: int, size: int | None, expected: int) -> None:
    assert auto_batch_size([size] * n) == expected


def test_batch_size_option_is_optional_and_validated() -> None:
    assert ScoreOptions(source="/in", model_dir="/m", output="/o").batch_size is None
    assert ScoreOptions(source="/in", model_dir="/m", output="/o", batch_size=8).batch_size == 8
    with pytest.raises(Exception, match="--batch-size must be at least 1"):
        ScoreOptions(source="/in", model_dir="/m", output="/o", batch_size=0)


def test_fileref_is_slotted_and_still_pickles() -> None:
    ref = FileRef("s3://b/a.wav", 10, "etag", {"speaker": "x"})
    assert not hasattr(ref, "__dict__")  # no per-object dict: ~40 B less per listed file
    assert pickle.loads(pickle.dumps(ref)) == ref
    assert ref == FileRef.from_dict(ref.to_dict())
