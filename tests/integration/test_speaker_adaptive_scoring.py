"""Two-pass speaker-adaptive scoring through the real runners: one row per file, error rows included."""

import csv
import shutil

import pyarrow.compute as pc
import pytest

from aei_batch.errors import ConfigError
from aei_batch.io.sinks.parquet import read_table
from aei_batch.records import COL, STATUS_ERROR, STATUS_OK
from aei_batch.scoring.job import ScoreOptions, run_score
from aei_batch.training.train import TrainOptions, run_train
from tests.support import media


@pytest.fixture(scope="module")
def sa_lda(synth_corpus, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("sa_lda")
    run_train(
        TrainOptions(
            data=str(synth_corpus),
            model_dir=str(model_dir),
            holdout_actors=[21, 22, 23, 24],
            feature_set="rich_audio",
            models=("lda",),
            speaker_adaptive=True,
            min_speaker_files=4,
            runner="local",
            progress=False,
        )
    )
    return model_dir


@pytest.fixture
def corpus_with_bad_files(synth_corpus, tmp_path):
    root = tmp_path / "in"
    shutil.copytree(synth_corpus, root)
    (root / "Actor_17" / "03-01-05-01-02-01-17.wav").write_bytes(media.random_bytes(2048))  # undecodable
    (root / "Actor_18" / "03-01-05-01-02-01-18.wav").write_bytes(b"")  # empty
    return root


def _score(source, model_dir, output, runner, **kw):
    return run_score(
        ScoreOptions(
            source=str(source),
            model_dir=str(model_dir),
            output=str(output),
            runner=runner,
            table_format="parquet",
            progress=False,
            max_error_rate=1.0,
            segments=_off(),
            **kw,
        )
    )


def _off():
    from aei_batch.scoring.windows import SegmentConfig

    return SegmentConfig(mode="off")


@pytest.mark.ray
def test_two_pass_on_ray_gives_one_row_per_file_with_error_rows(
    ray_local, corpus_with_bad_files, sa_lda, tmp_path
):
    n_files = len(list(corpus_with_bad_files.rglob("*.wav")))
    summary = _score(corpus_with_bad_files, sa_lda, tmp_path / "t", "ray")
    table = read_table(str(tmp_path / "t"))
    assert summary.files == table.num_rows == n_files == 66
    assert len(set(table[COL.uri].to_pylist())) == n_files
    errors = table.filter(pc.equal(table[COL.status], STATUS_ERROR)).to_pylist()
    assert len(errors) == summary.errors == 2
    assert {e[COL.error_code] for e in errors} <= {"DECODE_FAILED", "EMPTY_FILE", "READ_FAILED"}
    assert all(e[COL.model_name] == "lda" and e[COL.speaker_id] for e in errors)
    ok = table.filter(pc.equal(table[COL.status], STATUS_OK)).to_pylist()
    assert all(r[COL.feature_set] == "rich_audio@v1+speaker-z" for r in ok)
    assert {r[COL.speaker_id] for r in ok} == {f"actor-{a:02d}" for a in range(17, 25)}
    assert all(
        abs(
            sum(
                r[c]
                for c in (
                    "p_neutral",
                    "p_calm",
                    "p_happy",
                    "p_sad",
                    "p_angry",
                    "p_fearful",
                    "p_disgust",
                    "p_surprised",
                )
            )
            - 1
        )
        < 1e-6
        for r in ok
    )


def test_two_pass_local_matches_ray_free_expectations_and_beats_global_fallback(
    synth_corpus, sa_lda, tmp_path
):
    """Per-speaker statistics help the held-out actors more than the global fallback does."""
    _score(synth_corpus, sa_lda, tmp_path / "sa", "local")
    _score(synth_corpus, sa_lda, tmp_path / "global", "local", speaker_adaptive=False)

    def heldout_acc(loc):
        rows = [r for r in read_table(str(loc)).to_pylist() if r[COL.actor] >= 21]
        assert len(rows) == 32
        return sum(r[COL.predicted_emotion] == r[COL.label_emotion] for r in rows) / len(rows)

    sa, glob = heldout_acc(tmp_path / "sa"), heldout_acc(tmp_path / "global")
    assert sa >= glob
    assert {r[COL.feature_set] for r in read_table(str(tmp_path / "global")).to_pylist()} == {"rich_audio@v1"}


def test_speaker_from_manifest_column_and_pattern(synth_corpus, sa_lda, tmp_path):
    """Manifest speaker_id wins; a speaker with too few files falls back to global statistics (still
    scored); a --speaker-pattern names speakers from file names."""
    files = sorted(synth_corpus.rglob("*.wav"))
    manifest = tmp_path / "m.csv"
    with manifest.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["uri", "speaker_id"])
        for i, f in enumerate(files):
            w.writerow([str(f), "lonely" if i == 0 else f"spk-{f.stem[-2:]}"])
    # the manifest names files outside its own folder: allowed by --allow-root (else OUTSIDE_ROOTS rows)
    _score(manifest, sa_lda, tmp_path / "t", "local", min_speaker_files=4, allowed_roots=[str(synth_corpus)])
    rows = read_table(str(tmp_path / "t")).to_pylist()
    assert len(rows) == len(files) and all(r[COL.status] == STATUS_OK for r in rows)
    spk = {r[COL.speaker_id] for r in rows}
    assert "lonely" in spk and "spk-17" in spk
    _score(synth_corpus, sa_lda, tmp_path / "p", "local", speaker_pattern=r"-(\d\d)\.wav$")
    assert {r[COL.speaker_id] for r in read_table(str(tmp_path / "p")).to_pylist()} == {
        f"{a:02d}" for a in range(17, 25)
    }


def test_speaker_adaptive_flag_needs_a_speaker_adaptive_model(synth_corpus, trained_model, tmp_path):
    with pytest.raises(ConfigError, match="speaker-adaptive"):
        _score(synth_corpus, trained_model, tmp_path / "t", "local", speaker_adaptive=True)
    with pytest.raises(ConfigError, match="capturing group"):
        _score(synth_corpus, trained_model, tmp_path / "t", "local", speaker_pattern="nogroup")
