"""Security properties, checked against the real SeaweedFS server, real Ray and the real CLI.

* The S3 secret never appears in stdout, stderr, Ray's log files, the table's files or its rows, whether
  the credentials are right or wrong.
* Model artifacts are never loaded unverified: a tampered artifact is refused (sha256), and a card that an
  attacker rewrote to match a malicious skops file is refused by the type allowlist.
* Keys and card entries with `..`, `/` or an absolute path cannot make us write outside a staging folder.
* Odd S3 keys (percent-escapes, spaces, `+`, `#`, unicode) are scored as exactly one row each.
* `aei-batch query` refuses writes and reads outside the table.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest

from aei_batch.errors import ExitCode, ModelError
from aei_batch.records import COL, STATUS_OK
from tests.support import media as M
from tests.support.seaweed import SeaweedS3

pytestmark = [pytest.mark.slow, pytest.mark.s3]

ODD_KEYS = ("in/%2e%2e/dots.wav", "in/sp ace+plus#hash%pct.wav", "in/ünï-😀.wav", "in/plain.wav")


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("aei-batch")
    full = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", **env}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300, env=full)


def files_containing(root: Path, needle: bytes) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if needle in path.read_bytes():
                    hits.append(str(path))
            except OSError:
                continue
    return hits


def test_secret_never_appears_in_output_logs_or_table(
    s3_bucket: str, s3_env: SeaweedS3, tmp_path: Path, trained_model: Path
) -> None:
    client = s3_env.client()
    for i, key in enumerate(ODD_KEYS):
        client.put_object(Bucket=s3_bucket, Key=key, Body=M.noise_wav_bytes(seconds=1.0, seed=i))
    source = f"s3://{s3_bucket}/in/"
    secret, wrong = s3_env.secret_key, "Wr0ng" + uuid.uuid4().hex + "SecretValue"
    ray_tmp = Path(tempfile.mkdtemp(prefix="aeisec"))  # short: Ray's socket paths must fit 107 bytes
    output = tmp_path / "table"
    try:
        bad = run_cli(
            "score",
            source,
            "-m",
            str(trained_model),
            "-o",
            str(output),
            "--runner",
            "local",
            "--verbose",
            "--no-progress",
            AWS_SECRET_ACCESS_KEY=wrong,
            AEI_S3_MAX_ATTEMPTS="2",
        )
        good = run_cli(
            "score",
            source,
            "-m",
            str(trained_model),
            "-o",
            str(output),
            "--runner",
            "ray",
            "--workers",
            "1",
            "--verbose",
            "--no-progress",
            RAY_TMPDIR=str(ray_tmp),
        )
        assert bad.returncode == ExitCode.CREDENTIALS, bad.stderr[-2000:]
        assert good.returncode == ExitCode.OK, good.stderr[-3000:]
        from aei_batch.io.sinks import read_predictions

        rows = read_predictions(str(output)).to_pylist()
        ray_logs = list(ray_tmp.rglob("*.log")) + list(ray_tmp.rglob("*.out")) + list(ray_tmp.rglob("*.err"))
        assert ray_logs, "Ray wrote no log files where expected: the scan would prove nothing"
        for value in (secret, wrong):
            for name, text in (
                ("stdout", bad.stdout + good.stdout),
                ("stderr", bad.stderr + good.stderr),
                ("table rows", json.dumps(rows, default=str)),
            ):
                assert value not in text, f"secret found in {name}"
            assert not files_containing(ray_tmp, value.encode()), "secret found in Ray's files"
            assert not files_containing(output, value.encode()), "secret found in the table's files"
    except AssertionError:
        print(f"Ray's files kept for diagnosis in {ray_tmp}")
        raise
    shutil.rmtree(ray_tmp, ignore_errors=True)
    # Odd keys: exactly one row each, under exactly the key they were stored as.
    assert sorted(r[COL.uri] for r in rows) == sorted(f"s3://{s3_bucket}/{k}" for k in ODD_KEYS)
    assert all(r[COL.status] == STATUS_OK for r in rows), [r[COL.error_message] for r in rows]
    print(
        f"\nscanned {len(ray_logs)} Ray log files, the table's files, rows, stdout and stderr of a wrong-"
        f"secret run (exit {bad.returncode}) and a right-secret Ray run (exit {good.returncode}): no secret"
    )


def _malicious_skops(path: Path) -> None:
    """A scikit-learn pipeline whose first step would call os.system on the features."""
    import skops.io as sio
    from sklearn.dummy import DummyClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    # Unfitted: fitting would already call os.system. skops stores the function by name.
    sio.dump(make_pipeline(FunctionTransformer(os.system), DummyClassifier()), path)


def test_rewritten_card_cannot_smuggle_a_disallowed_type(tmp_path: Path, trained_model: Path) -> None:
    """The attacker controls the card and the artifact, so the sha256 matches: the skops allowlist refuses."""
    from aei_batch.models.card import sha256_file
    from aei_batch.models.loader import load_model

    model = Path(shutil.copytree(trained_model, tmp_path / "model"))
    card = json.loads((model / "card.json").read_text())
    sk_name = next(n for n, a in card["models"].items() if a["kind"] == "sklearn")
    art = model / card["models"][sk_name]["file"]
    _malicious_skops(art)
    card["models"][sk_name]["sha256"] = sha256_file(art)
    (model / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="not allowed"):
        load_model(str(model), sk_name)


@pytest.mark.parametrize("runner", ["pool", "ray"])
def test_scoring_refuses_a_disallowed_type_and_commits_nothing(
    tmp_path: Path, trained_model: Path, runner: str
) -> None:
    """`score` on every runner refuses the model before anything is committed: the model's exit code, no
    traceback, no table rows."""
    from aei_batch.io.sinks import read_predictions
    from aei_batch.models.card import sha256_file

    model = Path(shutil.copytree(trained_model, tmp_path / "model"))
    card = json.loads((model / "card.json").read_text())
    art = model / card["models"][card["default_model"]]["file"]
    _malicious_skops(art)
    card["models"][card["default_model"]]["sha256"] = sha256_file(art)
    (model / "card.json").write_text(json.dumps(card))
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        (src / f"clip{i}.wav").write_bytes(M.noise_wav_bytes(seconds=0.5, seed=i))
    out = tmp_path / "out"
    done = run_cli("score", str(src), "-m", str(model), "-o", str(out), "--runner", runner, "--no-progress")
    assert done.returncode == ExitCode.MODEL, done.stderr[-2000:]
    assert "not allowed" in done.stderr and "Traceback" not in done.stderr
    assert read_predictions(str(out)).num_rows == 0


def _upload_model(s3: SeaweedS3, bucket: str, model: Path, prefix: str, edit: Any) -> str:
    client = s3.client()
    card = json.loads((model / "card.json").read_text())
    for art in card["models"].values():
        client.put_object(
            Bucket=bucket, Key=f"{prefix}/{art['file']}", Body=(model / art["file"]).read_bytes()
        )
    edit(card)
    client.put_object(Bucket=bucket, Key=f"{prefix}/card.json", Body=json.dumps(card).encode())
    return f"s3://{bucket}/{prefix}"


def test_model_from_s3_cannot_write_outside_its_folder(
    s3_bucket: str, s3_env: SeaweedS3, tmp_path: Path, trained_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aei_batch.models.loader import load_model

    tag = uuid.uuid4().hex[:10]
    cache = tmp_path / "cache"  # materialise() downloads into a staging folder in the model cache
    monkeypatch.setenv("AEI_MODEL_CACHE", str(cache))
    tmp_root = Path(tempfile.gettempdir())
    names = {
        "parent": f"../escape-{tag}.skops",
        "absolute": str(tmp_root / f"abs-{tag}.skops"),
        "nested": f"sub/../../nested-{tag}.skops",
    }
    for what, name in names.items():

        def edit(card: dict[str, Any], name: str = name) -> None:
            card["models"][card["default_model"]]["file"] = name

        uri = _upload_model(s3_env, s3_bucket, trained_model, f"model-{what}", edit)
        with pytest.raises(ModelError, match="not a plain file name"):
            load_model(uri)
    # materialise() downloads into a folder of the cache: these are where an escape would land
    targets = [
        root / f"{stem}-{tag}.skops" for stem in ("escape", "abs", "nested") for root in (tmp_root, tmp_path)
    ]
    leaked = [p for p in targets + [Path.cwd() / f"escape-{tag}.skops"] if p.exists()]
    assert not leaked, f"files written outside the model folder: {leaked}"
    # The untouched model loads from S3 (the check does not refuse honest cards).
    good = _upload_model(s3_env, s3_bucket, trained_model, "model-ok", lambda card: None)
    assert load_model(good).name


def test_spooled_s3_keys_stay_in_the_temp_dir(s3_bucket: str, s3_env: SeaweedS3) -> None:
    """Large S3 objects are spooled to a temporary file: an odd key never shapes its path."""
    from aei_batch.io.storage import open_source, temp_root

    client = s3_env.client()
    tmp_root = temp_root().resolve()  # this process's temporary folder, removed at exit
    for key in ODD_KEYS:
        client.put_object(Bucket=s3_bucket, Key=key, Body=M.noise_wav_bytes(seconds=0.5))
        with open_source(f"s3://{s3_bucket}/{key}") as local:
            path = Path(local).resolve()
            assert path.parent == tmp_root and path.name.startswith("aei-spool-"), path
        assert not path.exists(), "the spool file was not removed"


def test_query_is_read_only(tmp_path: Path, trained_model: Path) -> None:
    from typer.testing import CliRunner

    from aei_batch.cli import app

    corpus = tmp_path / "in"
    corpus.mkdir()
    for i in range(3):
        (corpus / f"c{i}.wav").write_bytes(M.noise_wav_bytes(seconds=1.0, seed=i))
    output = str(tmp_path / "table")
    runner = CliRunner()
    assert (
        runner.invoke(
            app, ["score", str(corpus), "-m", str(trained_model), "-o", output, "--runner", "local"]
        ).exit_code
        == 0
    )
    ok = runner.invoke(
        app, ["query", "SELECT count(*) AS n FROM predictions", "-o", output, "--format", "csv"]
    )
    assert ok.exit_code == 0 and "3" in ok.output, ok.output
    outside = tmp_path / f"copied-{uuid.uuid4().hex[:6]}.csv"
    attempts = [
        "DELETE FROM predictions",
        "CREATE TABLE t AS SELECT 1",
        f"COPY (SELECT 1) TO '{outside}'",
        "SELECT 1; DROP VIEW predictions",
        "INSTALL httpfs",
        "SELECT * FROM read_text('/etc/hostname')",
        f"SELECT * FROM read_csv('{Path(__file__).resolve()}')",
    ]
    for sql in attempts:
        res = runner.invoke(app, ["query", sql, "-o", output])
        assert res.exit_code != 0, f"query allowed: {sql}\n{res.output}"
        assert res.exit_code != ExitCode.UNEXPECTED or "Traceback" not in res.output, (sql, res.output)
    assert not outside.exists()
    again = runner.invoke(
        app, ["query", "SELECT count(*) AS n FROM predictions", "-o", output, "--format", "csv"]
    )
    assert again.output == ok.output
