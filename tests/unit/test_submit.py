"""`aei-batch submit`: ids, addresses, arguments, entrypoints, runtime_env, outcomes, the jobs/ wrappers."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aei_batch.cli import command_args, command_options, job_args
from aei_batch.errors import ConfigError, ExitCode, JobFailedError
from aei_batch.submit import (
    JobOutcome,
    build_entrypoint,
    build_runtime_env,
    check_submission_id,
    new_submission_id,
    raise_for_outcome,
    resolve_address,
)

JOBS = Path(__file__).resolve().parents[2] / "jobs"


def test_submission_id_is_sortable_unique_and_valid() -> None:
    sid = new_submission_id("score", now=datetime(2026, 11, 24, 17, 5, 9, tzinfo=UTC), token="0a1b2c3d")
    assert sid == "aei-score-20261124T170509Z-0a1b2c3d"
    ids = {new_submission_id("train") for _ in range(200)}
    assert len(ids) == 200
    for i in ids:
        assert re.fullmatch(r"aei-train-\d{8}T\d{6}Z-[0-9a-f]{8}", i)
        assert check_submission_id(i) == i


@pytest.mark.parametrize("bad", ["", "has space", "a/b", "-leading-dash", "x" * 129, "semi;colon", "id\n"])
def test_bad_submission_id_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError) as exc:
        check_submission_id(bad)
    assert exc.value.exit_code == ExitCode.CONFIG


def test_address_from_flag_then_env_and_scheme_added() -> None:
    assert resolve_address("http://head:8265", {"RAY_ADDRESS": "http://other:1"}) == "http://head:8265"
    assert resolve_address(None, {"RAY_ADDRESS": "127.0.0.1:8265"}) == "http://127.0.0.1:8265"
    assert resolve_address(None, {"RAY_ADDRESS": "https://ray.example.com"}) == "https://ray.example.com"
    with pytest.raises(ConfigError, match="no Ray cluster address") as exc:
        resolve_address(None, {})
    assert "RAY_ADDRESS" in str(exc.value)


def test_command_args_are_validated_and_canonical() -> None:
    args = command_args("score", ["s3://b/in", "-m", "s3://b/m", "--output=s3://b/t", "--workers", "4"])
    assert args == ["s3://b/in", "--model-dir", "s3://b/m", "--output", "s3://b/t", "--workers", "4"]


def test_config_is_folded_under_the_command_line() -> None:
    config = {
        "model-dir": "/m",
        "output": "/from-config",
        "format": "parquet",
        "extensions": ["wav", "flac"],
        "incremental": True,
        "batch_size": 8,
    }
    args = command_args("score", ["/in", "--output", "/from-cli", "--no-incremental"], config)
    assert args[0] == "/in"
    assert args[args.index("--output") + 1] == "/from-cli"  # the command line wins
    assert args[args.index("--model-dir") + 1] == "/m"
    # the old key `format` is the table kind: it becomes today's --table-format, never query's --format
    assert args[args.index("--table-format") + 1] == "parquet" and "--format" not in args
    assert args[args.index("--extensions") + 1] == "wav,flac"
    assert args[args.index("--batch-size") + 1] == "8"
    assert "--no-incremental" in args and "--incremental" not in args


def test_required_options_may_come_from_the_config() -> None:
    args = command_args("train", ["--seed", "3"], {"data": "/d", "model_dir": "/m", "seed": 9})
    assert args == ["--data", "/d", "--model-dir", "/m", "--seed", "3"]


def test_unknown_config_key_names_the_fix() -> None:
    with pytest.raises(ConfigError, match="'model_path' is not an option of `aei-batch train`") as exc:
        command_args("train", [], {"data": "/d", "model_dir": "/m", "model_path": "x"})
    assert "model_dir" in str(exc.value)  # the hint lists the real option names


def test_bad_arguments_fail_before_submission() -> None:
    with pytest.raises(Exception, match="No such option") as exc:
        command_args("score", ["/in", "--no-such-option"])
    assert getattr(exc.value, "exit_code", None) == ExitCode.USAGE
    with pytest.raises(Exception, match="integer"):
        command_args("score", ["/in"], {"batch_size": "many"})
    with pytest.raises(ConfigError, match="missing --data"):
        command_args("train", ["--model-dir", "/m"])  # --data is required (flag or config)
    with pytest.raises(ConfigError, match="cannot submit 'demo'"):
        command_args("demo", [])


def test_score_and_train_ship_their_config_verbatim(tmp_path: Path) -> None:
    cfg = tmp_path / "job.yaml"
    cfg.write_text("source: /in\nmodel_dir: /m\noutput: /t\ncatalog:\n  uri: sqlite:////tmp/c.db\n")
    args, text = job_args("score", ["--workers", "2"], cfg)
    assert (
        args == ["--workers", "2"] and text == cfg.read_text()
    )  # `catalog:` has no flag: it travels as YAML
    cfg.write_text("data: /d\nmodel_dir: /m\nholdout_actors: 21-24\n")
    args, text = job_args("train", [], cfg)  # train has --config too: the same loader runs on the cluster
    assert args == [] and text == cfg.read_text()
    cfg.write_text("model_dir: /m\n")
    with pytest.raises(ConfigError, match="missing --data"):
        job_args("train", [], cfg)
    cfg.write_text("- not\n- a mapping\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        job_args("score", [], cfg)
    with pytest.raises(ConfigError, match="cannot read config"):
        job_args("score", [], tmp_path / "missing.yaml")


def _echo_entrypoint(entrypoint: str) -> str:
    """Run an entrypoint through /bin/sh (as Ray does) with a stand-in that prints its argv and its config."""
    probe = (
        "python3 -c 'import sys,pathlib; print(sys.argv[1:]); "
        'print(pathlib.Path(sys.argv[-1]).read_text(), end="")\''
    )
    assert entrypoint.startswith("python -m aei_batch.cli score ")
    cmd = probe + entrypoint[len("python -m aei_batch.cli score") :]
    return subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True, check=True).stdout


def test_entrypoint_quotes_arguments_and_carries_the_config_unexpanded() -> None:
    text = 'source: s3://b/it\'s here\noutput: $HOME/`id`\nAEI_JOB_CONFIG\nnote: "x"\n'
    ep = build_entrypoint("score", ["/in dir/a b", "--model-dir", "/m;rm -rf /"], text)
    out = _echo_entrypoint(ep)
    argv_line, config = out.split("\n", 1)
    assert argv_line == str(["/in dir/a b", "--model-dir", "/m;rm -rf /", "--config", "/dev/stdin"])
    assert config == text  # no $-expansion, no backticks run, delimiter line inside the YAML survives
    assert build_entrypoint("train", ["--data", "/d"]) == "python -m aei_batch.cli train --data /d"


def test_runtime_env_forwards_named_variables_only(tmp_path: Path) -> None:
    environ = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_SECRET_ACCESS_KEY": "s3cr3t", "OTHER": "x"}
    renv = build_runtime_env(str(tmp_path), ["AWS_ENDPOINT_URL", "AWS_SECRET_ACCESS_KEY"], environ)
    assert renv == {
        "working_dir": str(tmp_path),
        "env_vars": {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_SECRET_ACCESS_KEY": "s3cr3t"},
    }
    assert build_runtime_env(None, [], environ) == {}
    assert build_runtime_env("s3://bucket/code.zip", [], environ) == {"working_dir": "s3://bucket/code.zip"}
    with pytest.raises(ConfigError, match="AWS_REGION: the variable is not set"):
        build_runtime_env(None, ["AWS_REGION"], environ)
    with pytest.raises(ConfigError, match="variable NAME") as exc:
        build_runtime_env(None, ["AWS_SECRET_ACCESS_KEY=s3cr3t"], environ)
    assert "s3cr3t" not in str(exc.value).replace("AWS_SECRET_ACCESS_KEY=s3cr3t", "")
    with pytest.raises(ConfigError, match="not a directory"):
        build_runtime_env(str(tmp_path / "nope"), [], environ)


def test_outcome_success_passes_failure_and_stop_exit_9() -> None:
    raise_for_outcome(JobOutcome("aei-score-x", "SUCCEEDED", "done", 0))
    msg = "Job entrypoint command failed with exit code 5, last logs:\nerror: input folder not found: /x\n"
    with pytest.raises(JobFailedError) as exc:
        raise_for_outcome(JobOutcome("aei-score-x", "FAILED", msg, 5))
    assert exc.value.exit_code == ExitCode.JOB_FAILED == 9
    assert "aei-score-x FAILED (job exit code 5): error: input folder not found: /x" in str(exc.value)
    with pytest.raises(JobFailedError, match="STOPPED"):
        raise_for_outcome(JobOutcome("aei-score-y", "STOPPED", "Job was intentionally stopped.", None))


def test_cli_without_a_cluster_address_exits_4(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from aei_batch.cli import app

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    res = CliRunner().invoke(app, ["submit", "score", "/in", "-m", "/m", "-o", "/t"])
    assert res.exit_code == ExitCode.CONFIG, res.output
    assert "no Ray cluster address" in res.output


def test_cli_unreachable_cluster_exits_4() -> None:
    from typer.testing import CliRunner

    from aei_batch.cli import app

    res = CliRunner().invoke(
        app, ["submit", "train", "--address", "http://127.0.0.1:9", "--data", "/d", "-m", "/m"]
    )
    assert res.exit_code == ExitCode.CONFIG, res.output
    assert "cannot reach the Ray Jobs API at http://127.0.0.1:9" in res.output


def test_example_configs_match_the_cli() -> None:
    from aei_batch.submit import load_config

    for name, command in (("score", "score"), ("nightly", "score"), ("train", "train")):
        config = load_config(JOBS / "configs" / f"{name}.example.yaml")
        assert command_args(command, [], config)  # every key is an option; required ones are present


def test_job_wrappers_build_the_cli_arguments() -> None:
    from jobs import nightly, score_prefix
    from jobs import train as train_job

    cfg = str(JOBS / "configs" / "score.example.yaml")
    assert score_prefix.cli_args(["--config", cfg, "--workers", "3"]) == [
        "score",
        "--config",
        cfg,
        "--no-progress",
        "--workers",
        "3",
    ]
    assert train_job.cli_args(["-c", str(JOBS / "configs" / "train.example.yaml"), "--seed", "7"])[-3:] == [
        "--seed",
        "7",
        "--no-progress",
    ]
    ncfg = str(JOBS / "configs" / "nightly.example.yaml")
    args = nightly.cli_args(["--config", ncfg, "--run-date", "2026-11-23"], {"--incremental", "--run-date"})
    assert args == ["score", "--config", ncfg, "--no-progress", "--incremental", "--run-date", "2026-11-23"]
    assert "--incremental" not in nightly.cli_args(["--config", ncfg], set())
    with pytest.raises(ConfigError, match="--run-date"):
        nightly.cli_args(["--config", ncfg, "--run-date", "2026-11-23"], {"--incremental"})
    assert ("--incremental" in command_options("score")) == (
        "--incremental" in nightly.cli_args(["--config", ncfg])
    )


def test_shipped_config_values_are_checked_before_submission(tmp_path: Path) -> None:
    cfg = tmp_path / "job.yaml"
    cfg.write_text("source: /in\nmodel_dir: /m\noutput: /t\nworkers: two\n")
    with pytest.raises(ConfigError, match=r"--workers \(workers in .*\): 'two' is not valid"):
        job_args("score", [], cfg)
    assert job_args("score", ["--workers", "3"], cfg)[0] == ["--workers", "3"]  # the flag overrides it
    cfg.write_text("source: /in\nmodel_dir: /m\noutput: /t\nbatchsize: 8\n")
    with pytest.raises(ConfigError, match="unknown key in config"):
        job_args("score", [], cfg)
    cfg.write_text("data: /d\nmodel_dir: /m\nseed: x\n")
    with pytest.raises(ConfigError, match=r"--seed \(seed in "):
        job_args("train", [], cfg)
