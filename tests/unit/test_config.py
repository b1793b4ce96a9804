"""One typed configuration for every command (issue 14 item 5) and its clear errors (issue 16).

The models are built as job code builds them (keyword arguments), through the loader the commands use
(flags > --config > AEI_<FIELD> > defaults), and through the real CLI (`typer.testing.CliRunner`): every bad
value ends as exit 4 with a message naming the option and the value, never a traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aei_batch.cli import app
from aei_batch.config import (
    EvalOptions,
    EvaluateOptions,
    QueryOptions,
    ScoreOptions,
    SubmitOptions,
    TimelineOptions,
    TrainOptions,
    load_options,
)
from aei_batch.errors import ConfigError, ExitCode
from aei_batch.scoring.windows import SegmentConfig

BASE = {"source": "/in", "model_dir": "/m", "output": "/nonexistent/out"}


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def _cli(*args: str, env: dict[str, str] | None = None):  # noqa: ANN202 - click's Result
    res = CliRunner().invoke(app, list(args), env=env)
    assert "Traceback" not in res.output and "pydantic" not in res.output.lower(), res.output
    return res


# --------------------------------------------------------------------------- models built in code


def test_score_options_keep_fields_defaults_and_the_segment_instance() -> None:
    seg = SegmentConfig(mode="on", window_s=4.0)
    opts = ScoreOptions(**BASE, segments=seg, extensions=["wav", ".flac"], workers=2)
    assert opts.segments is seg
    assert opts.extensions == [".wav", ".flac"]
    assert (opts.runner, opts.table_format, opts.mode, opts.max_error_rate) == (
        "auto",
        "iceberg",
        "merge",
        0.10,
    )
    assert opts.segments.mode == "on" and ScoreOptions(**BASE).segments.mode == "auto"
    assert (opts.allowed_roots, opts.on_complete, opts.metrics, opts.lineage) == (None, None, None, None)
    assert (opts.log_format, opts.checkpoint_every) == ("text", 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_error_rate": 1.5}, "--max-error-rate must be between 0 and 1, got 1.5"),
        ({"batch_size": 0}, "--batch-size must be at least 1, got 0"),
        ({"workers": 0}, "--workers must be at least 1, got 0"),
        ({"runner": "spark"}, "unknown runner 'spark'"),
        ({"min_speaker_files": 1}, "--min-speaker-files must be at least 2, got 1"),
        ({"decode_timeout_s": -1}, "--decode-timeout-s must be 0 (off) or more, got -1"),
        ({"log_format": "xml"}, "unknown --log-format 'xml'"),
        ({"checkpoint_every": -1}, "--checkpoint-every must be at least 0"),
        ({"batch_size": "x"}, "--batch-size: 'x' is not valid"),
        ({"extensions": 5}, "--extensions: 5 is not valid"),
        ({"catalog": "sqlite:///x"}, "the catalog: block of --config must be a mapping"),
        ({"no_such": 1}, "unknown option 'no_such'"),
    ],
)
def test_score_options_refuse_bad_values(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        ScoreOptions(**BASE, **kwargs)
    assert message in str(exc.value)
    assert exc.value.exit_code == ExitCode.CONFIG


def test_other_commands_models() -> None:
    t = TrainOptions(data="/d", model_dir="/m", holdout_actors="21-22,24", models="svc, lda_shrunk")
    assert t.holdout_actors == [21, 22, 24] and t.models == ("svc", "lda_shrunk")
    assert (t.runner, t.modality, t.feature_set) == ("auto", "auto", "seed_mfcc157")
    assert TrainOptions(data="/d", model_dir="/m", holdout_actors=[]).holdout_actors == []
    with pytest.raises(ConfigError, match="cannot parse actors"):
        TrainOptions(data="/d", model_dir="/m", holdout_actors="a-b")
    assert EvalOptions is EvaluateOptions
    e = EvalOptions(report_dir="r", predictions="/t")
    assert (e.runner, e.table_format) == ("auto", "iceberg")
    with pytest.raises(ConfigError, match="exactly one of --model-dir, --cv or --predictions"):
        EvalOptions(report_dir="r")
    q = QueryOptions(output="/t")
    assert (q.table_format, q.output_format, q.max_rows) == ("iceberg", "table", 1000)
    with pytest.raises(ConfigError, match="unknown --format 'xml'"):
        QueryOptions(output="/t", output_format="xml")
    assert TimelineOptions(uri="a.wav", output="/t").png is None
    assert SubmitOptions(command="score").wait is True


def test_a_table_location_that_is_a_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    for build in (
        lambda: ScoreOptions(**{**BASE, "output": str(f)}),
        lambda: QueryOptions(output=str(f)),
        lambda: TimelineOptions(uri="a", output=str(f)),
        lambda: EvalOptions(report_dir="r", predictions=str(f)),
    ):
        with pytest.raises(ConfigError, match="is a file, not a table folder"):
            build()


# --------------------------------------------------------------------------- the loader


def test_precedence_flags_then_config_then_environment_then_defaults(tmp_path: Path) -> None:
    cfg = _yaml(tmp_path, "source: /in\nmodel-dir: /m\noutput: /o\nbatch_size: 8\nworkers: 3\n")
    env = {"AEI_BATCH_SIZE": "16", "AEI_WORKERS": "5", "AEI_MAX_FILE_MB": "64", "AEI_EXTENSIONS": "wav,mp3"}
    opts = load_options(ScoreOptions, flags={"workers": 2, "batch_size": None}, config=cfg, environ=env)
    assert opts.workers == 2  # flag
    assert opts.batch_size == 8  # config over environment
    assert opts.max_file_mb == 64.0  # environment over default
    assert opts.extensions == [".wav", ".mp3"]  # a list from a comma-separated variable
    assert opts.max_duration_s == 4 * 3600.0  # default
    assert opts.model_dir == "/m"


def test_segments_fold_flat_keys_and_yaml_booleans(tmp_path: Path) -> None:
    cfg = _yaml(tmp_path, "source: /in\nmodel_dir: /m\noutput: /o\nsegments: on\nwindow_s: 4\n")
    opts = load_options(ScoreOptions, flags={"hop_s": 1.0}, config=cfg, environ={})
    assert (opts.segments.mode, opts.segments.window_s, opts.segments.hop_s) == ("on", 4, 1.0)


def test_old_config_keys_still_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _yaml(tmp_path, "source: /in\nmodel_dir: /m\noutput: /o\nformat: parquet\nmodel: svc\n")
    opts = load_options(ScoreOptions, flags={}, config=cfg, environ={})
    assert (opts.table_format, opts.model_name) == ("parquet", "svc")
    assert "'format' is deprecated: use 'table_format'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("max_error_rate: abc", "--max-error-rate (max_error_rate in "),
        ("batch_size: x", "--batch-size (batch_size in "),
        ("extensions: 5", "--extensions (extensions in "),
        ("workers: two", "--workers (workers in "),
        ("workers: 0", "--workers must be at least 1, got 0"),
        ("incremental: maybe", "--incremental (incremental in "),
        ("window_s: 100", "--window-s must be between 0.5 and 60 seconds"),
        ("hop_s: abc", "--hop-s: 'abc' is not valid: it must be a number"),
        ("per_channel: maybe", "--per-channel: 'maybe' is not valid: it must be true or false"),
    ],
)
def test_wrong_types_in_the_config_name_the_option_and_value(
    tmp_path: Path, line: str, expected: str
) -> None:
    cfg = _yaml(tmp_path, f"source: /in\nmodel_dir: /m\noutput: /o\n{line}\n")
    with pytest.raises(ConfigError) as exc:
        load_options(ScoreOptions, flags={}, config=cfg, environ={})
    assert expected in str(exc.value)
    assert line.split(": ")[1] in str(exc.value)  # the bad value is shown


def test_unknown_keys_are_refused_with_the_known_ones_listed(tmp_path: Path) -> None:
    cfg = _yaml(tmp_path, "source: /in\nmodel_dir: /m\noutput: /o\nbatchsize: 8\n")
    with pytest.raises(ConfigError) as exc:
        load_options(ScoreOptions, flags={}, config=cfg, environ={})
    assert "unknown key in config" in str(exc.value) and "batchsize" in str(exc.value)
    assert "batch_size" in str(exc.value)  # in the list of known keys
    # query reads the score config: score's keys are accepted (and ignored), others are not
    from aei_batch.config import score_keys

    q = load_options(QueryOptions, flags={}, config=cfg, environ={}, ignore_keys=score_keys() | {"batchsize"})
    assert q.output == "/o"
    with pytest.raises(ConfigError, match="unknown key in config"):
        load_options(QueryOptions, flags={}, config=cfg, environ={}, ignore_keys=score_keys())


def test_environment_errors_name_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"--workers \(AEI_WORKERS\): 'two' is not valid"):
        load_options(ScoreOptions, flags=BASE, environ={"AEI_WORKERS": "two"})


def test_missing_required_options() -> None:
    with pytest.raises(ConfigError, match="missing SOURCE, --model-dir") as exc:
        load_options(ScoreOptions, flags={"output": "/o"}, environ={})
    assert "give them on the command line or in --config" in str(exc.value)


# --------------------------------------------------------------------------- the command line


@pytest.mark.parametrize("line", ["max_error_rate: abc", "batch_size: x", "extensions: 5", "workers: two"])
def test_cli_score_bad_config_is_exit_4(tmp_path: Path, line: str) -> None:
    cfg = _yaml(tmp_path, f"source: /in\nmodel_dir: /m\noutput: {tmp_path / 'o'}\n{line}\n")
    res = _cli("score", "--config", str(cfg))
    assert res.exit_code == ExitCode.CONFIG, res.output
    assert line.split(":")[0] in res.output


def test_cli_score_refusals(tmp_path: Path) -> None:
    f = tmp_path / "file.txt"
    f.write_text("x")
    res = _cli("score", "/in", "-m", "/m", "-o", str(f))
    assert res.exit_code == ExitCode.CONFIG and "is a file, not a table folder" in res.output
    out = str(tmp_path / "o")
    res = _cli("score", "/in", "-m", "/m", "-o", out, "--workers", "0")
    assert res.exit_code == ExitCode.CONFIG and "--workers must be at least 1" in res.output
    res = _cli("score", "/in", "-m", "/m", "-o", out, "--log-format", "xml")
    assert res.exit_code == ExitCode.CONFIG and "--log-format" in res.output
    res = _cli("score", "/in", "-m", "/m", "-o", out, "--checkpoint-every", "-2")
    assert res.exit_code == ExitCode.CONFIG and "--checkpoint-every" in res.output
    res = _cli("score", "/in", "-m", "/m", "-o", out, env={"AEI_WORKERS": "0"})
    assert res.exit_code == ExitCode.CONFIG and "--workers must be at least 1" in res.output
    res = _cli("score", "-o", out)
    assert res.exit_code == ExitCode.CONFIG and "missing SOURCE, --model-dir" in res.output


def test_cli_table_format_and_its_old_spelling(tmp_path: Path) -> None:
    out = str(tmp_path / "o")
    res = _cli("score", "/in", "-m", "/m", "-o", out, "--table-format", "delta")
    assert res.exit_code == ExitCode.CONFIG and "delta" in res.output
    res = _cli("score", "/in", "-m", "/m", "-o", out, "--format", "delta")
    assert res.exit_code == ExitCode.CONFIG and "delta" in res.output
    assert "score --format is deprecated here: use --table-format" in res.output
    res = _cli("evaluate", "--predictions", out, "--format", "delta")
    assert res.exit_code == ExitCode.CONFIG and "use --table-format" in res.output
    res = _cli("timeline", "a.wav", "-o", out, "--table-format", "csv")
    assert res.exit_code == ExitCode.CONFIG and "csv" in res.output
    res = _cli("query", "SELECT 1", "-o", out, "--format", "xml")
    assert res.exit_code == ExitCode.CONFIG and "unknown --format 'xml'" in res.output


def test_cli_train_and_evaluate_take_a_config(tmp_path: Path) -> None:
    res = _cli("train", "--config", str(_yaml(tmp_path, "data: /d\nmodel_dir: /m\nseed: x\n")))
    assert res.exit_code == ExitCode.CONFIG and "--seed (seed in " in res.output
    res = _cli("train", "--config", str(_yaml(tmp_path, "model_dir: /m\n")))
    assert res.exit_code == ExitCode.CONFIG and "missing --data" in res.output
    res = _cli("train", "-d", "/d", "-m", "/m", "--runner", "spark")
    assert res.exit_code == ExitCode.CONFIG and "unknown --runner 'spark'" in res.output
    res = _cli("evaluate", "--config", str(_yaml(tmp_path, "predictions: /t\nfolds: many\n")))
    assert res.exit_code == ExitCode.CONFIG and "--folds (folds in " in res.output


def test_help_shows_one_meaning_per_name() -> None:
    for command in ("score", "timeline", "evaluate", "query"):
        text = _cli(command, "--help", env={"COLUMNS": "200"}).output
        assert "--table-format" in text, command
    score_help = _cli("score", "--help", env={"COLUMNS": "200"}).output
    assert "--format " not in score_help  # the old spelling is hidden
    for flag in (
        "--allow-root",
        "--on-complete",
        "--metrics",
        "--lineage",
        "--log-format",
        "--checkpoint-every",
    ):
        assert flag in score_help
    query_help = _cli("query", "--help", env={"COLUMNS": "200"}).output
    assert "Output format: table (default), csv or json" in query_help
    for command in ("score", "train", "evaluate"):
        assert "auto (default" in _cli(command, "--help", env={"COLUMNS": "200"}).output, command


def test_help_does_not_import_the_heavy_parts() -> None:
    code = (
        "import sys, aei_batch.cli; "
        "print(sorted(m for m in ('pydantic', 'numpy', 'pyarrow', 'duckdb', 'ray') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_listing_kwargs_pass_allowed_roots_only_where_list_inputs_takes_them() -> None:
    import inspect

    from aei_batch.config import listing_kwargs
    from aei_batch.io import storage

    opts = ScoreOptions(**BASE, allowed_roots=["/data", "s3://b/in"], extensions=["wav"])
    kwargs = listing_kwargs(opts)
    assert kwargs["extensions"] == [".wav"]
    takes = "allowed_roots" in inspect.signature(storage.list_inputs).parameters
    assert ("allowed_roots" in kwargs) == takes
    if takes:
        assert kwargs["allowed_roots"] == ["/data", "s3://b/in"]
    assert "allowed_roots" not in listing_kwargs(ScoreOptions(**BASE))


def test_timeline_old_table_location_spelling(tmp_path: Path) -> None:
    empty = tmp_path / "table"
    empty.mkdir()
    for flag in ("--table", "-t"):
        res = _cli("timeline", "x.wav", flag, str(empty), "--table-format", "parquet")
        assert res.exit_code == ExitCode.INPUT_NOT_FOUND, res.output  # read as the location: no segments
        assert "no segments for 'x.wav'" in res.output and "is deprecated: use -o/--output" in res.output
    res = _cli("timeline", "x.wav", "-o", str(empty), "--table", "aei.segments", "--table-format", "parquet")
    assert res.exit_code == ExitCode.INPUT_NOT_FOUND and "deprecated" not in res.output
