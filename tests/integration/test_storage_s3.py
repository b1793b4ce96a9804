"""aei_batch.io.storage against a real SeaweedFS server: reads and their error classes, identity, the spool,
publishing, manifests of s3 uris (HEAD identity, wrong secret = exit 6 before any commit), s3 model dirs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aei_batch.errors import CredentialsError, ErrorCode, ExitCode, FileError, ModelError, StorageError
from aei_batch.io import storage
from tests.support import media as M
from tests.support.seaweed import SeaweedS3

pytestmark = [pytest.mark.s3]


def _put(s3: SeaweedS3, bucket: str, key: str, body: bytes) -> str:
    s3.client().put_object(Bucket=bucket, Key=key, Body=body)
    return f"s3://{bucket}/{key}"


def test_s3_reads_and_per_file_codes(s3_env: SeaweedS3, s3_bucket: str) -> None:
    body = M.noise_wav_bytes(seconds=0.4)
    uri = _put(s3_env, s3_bucket, "in/a.wav", body)
    assert storage.read_bytes(uri, max_bytes=None) == body
    assert storage.as_local_path(uri) is None
    storage.check_readable(uri, max_bytes=len(body))
    cases = {
        "too large": (uri, 100, ErrorCode.FILE_TOO_LARGE),
        "missing object": (f"s3://{s3_bucket}/in/none.wav", None, ErrorCode.READ_FAILED),
        "missing bucket": ("s3://no-such-bucket-aei-storage/a.wav", None, ErrorCode.READ_FAILED),
    }
    for what, (target, limit, code) in cases.items():
        with pytest.raises(FileError) as info:
            storage.read_bytes(target, max_bytes=limit)
        assert info.value.code == code, what
        with pytest.raises(FileError) as info:
            storage.check_readable(target, max_bytes=limit)
        assert info.value.code == code, what
    with storage.open_source(uri, max_bytes=None, block_bytes=1000) as local:
        path = Path(local)
        assert path.parent == storage.temp_root() and path.read_bytes() == body
    assert not path.exists()
    with pytest.raises(FileError) as info, storage.open_source(uri, max_bytes=100, block_bytes=64):
        pass
    assert info.value.code == ErrorCode.FILE_TOO_LARGE
    assert list(storage.temp_root().glob("aei-spool-*")) == []


def test_s3_current_etag_matches_listing_and_follows_content(s3_env: SeaweedS3, s3_bucket: str) -> None:
    uri = _put(s3_env, s3_bucket, "in/a.wav", M.noise_wav_bytes(seconds=0.4, seed=1))
    (listed,) = storage.list_inputs(f"s3://{s3_bucket}/in/")
    assert storage.current_etag(uri) == listed.etag
    _put(s3_env, s3_bucket, "in/a.wav", M.noise_wav_bytes(seconds=0.4, seed=2))
    assert storage.current_etag(uri) not in (None, listed.etag)
    s3_env.client().delete_object(Bucket=s3_bucket, Key="in/a.wav")
    assert storage.current_etag(uri) is None


def test_wrong_secret_and_unreachable_store_are_systemic(
    s3_env: SeaweedS3, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = _put(s3_env, s3_bucket, "in/a.wav", b"x" * 100)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-" + "y" * 30)
    for fn in (storage.read_bytes, storage.check_readable, storage.current_etag):
        with pytest.raises(CredentialsError) as info:
            fn(uri)
        assert info.value.exit_code == ExitCode.CREDENTIALS
        assert "wrong-" not in str(info.value)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_env.env()["AWS_SECRET_ACCESS_KEY"])
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard port: nothing listens
    monkeypatch.setenv("AEI_S3_MAX_ATTEMPTS", "1")
    with pytest.raises(StorageError, match="storage unreachable") as info:
        storage.read_bytes(uri)
    assert info.value.exit_code == ExitCode.STORAGE
    with pytest.raises(StorageError, match="storage unreachable"), storage.open_source(uri):
        pass


def test_s3_publish_list_delete_and_arrow_filesystem(
    s3_env: SeaweedS3, s3_bucket: str, tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    local = tmp_path / "part.parquet"
    pq.write_table(pa.table({"x": [1, 2, 3]}), local)
    base = f"s3://{s3_bucket}/table"
    dest = storage.join(base, "run_date=2026-01-01", "part.parquet")
    assert not storage.exists(dest)
    assert storage.publish(local, dest) == dest
    assert storage.exists(dest)
    assert storage.list_files(base + "/") == ["run_date=2026-01-01/part.parquet"]
    fs, path = storage.filesystem(dest)
    assert pq.read_table(path, filesystem=fs)["x"].to_pylist() == [1, 2, 3]
    storage.delete([dest, storage.join(base, "never-there.parquet")])
    assert not storage.exists(dest) and storage.list_files(base) == []


def test_s3_manifest_rows_get_head_identity(s3_env: SeaweedS3, s3_bucket: str, tmp_path: Path) -> None:
    uris = [_put(s3_env, s3_bucket, f"in/{i}.wav", M.noise_wav_bytes(seconds=0.3, seed=i)) for i in range(5)]
    listed = {r.uri: r for r in storage.list_inputs(f"s3://{s3_bucket}/in/")}
    manifest = tmp_path / "m.csv"
    manifest.write_text("uri\n" + "\n".join(uris + [uris[0]]) + "\n")
    _put(s3_env, s3_bucket, "m.csv", manifest.read_bytes())
    relative = "uri\n" + "\n".join(f"./in/{i}.wav" for i in range(5)) + "\nin/sub/../0.wav\n"
    _put(s3_env, s3_bucket, "m2.csv", relative.encode())  # relative to the manifest's prefix
    for source in (str(manifest), f"s3://{s3_bucket}/m.csv", f"s3://{s3_bucket}/m2.csv"):
        refs = list(storage.list_inputs(source))
        assert [r.uri for r in refs] == sorted(uris)
        for r in refs:
            assert (r.size, r.etag) == (listed[r.uri].size, listed[r.uri].etag)


def test_s3_manifest_with_wrong_secret_exits_6_before_committing(
    s3_env: SeaweedS3, s3_bucket: str, tmp_path: Path, trained_model: Path
) -> None:
    uris = [_put(s3_env, s3_bucket, f"in/{i}.wav", M.noise_wav_bytes(seconds=1.0, seed=i)) for i in range(3)]
    manifest = tmp_path / "m.csv"
    manifest.write_text("uri\n" + "\n".join(uris) + "\n")
    output = tmp_path / "out"
    exe = Path(sys.executable).with_name("aei-batch")
    env = {**os.environ, "AWS_SECRET_ACCESS_KEY": "wrong-" + "z" * 30, "AEI_S3_MAX_ATTEMPTS": "2"}
    args = [
        str(exe),
        "score",
        str(manifest),
        "-m",
        str(trained_model),
        "-o",
        str(output),
        "--runner",
        "local",
    ]
    proc = subprocess.run([*args, "--no-progress"], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == ExitCode.CREDENTIALS, proc.stderr[-2000:]
    assert "fix:" in proc.stderr and "Traceback" not in proc.stderr and "wrong-zzz" not in proc.stderr
    assert not output.exists(), "something was committed"


def _upload_model(s3: SeaweedS3, bucket: str, model: Path, prefix: str) -> str:
    for path in model.iterdir():
        if path.is_file():
            _put(s3, bucket, f"{prefix}/{path.name}", path.read_bytes())
    return f"s3://{bucket}/{prefix}"


def test_s3_model_dir_is_cached_by_content_not_copied_to_tmpdir(
    s3_env: SeaweedS3, s3_bucket: str, tmp_path: Path, trained_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aei_batch.models.card import materialise
    from aei_batch.models.loader import load_model

    cache = tmp_path / "cache"
    monkeypatch.setenv("AEI_MODEL_CACHE", str(cache))
    uri = _upload_model(s3_env, s3_bucket, trained_model, "model")
    before = set(Path(storage.temp_root()).iterdir())
    first = materialise(uri)
    assert (
        first.parent == cache
        and (first / "card.json").read_bytes() == (trained_model / "card.json").read_bytes()
    )
    stamp = (first / "card.json").stat().st_mtime_ns
    assert load_model(uri).name and materialise(uri) == first
    assert (first / "card.json").stat().st_mtime_ns == stamp, "the cached copy was downloaded again"
    assert set(Path(storage.temp_root()).iterdir()) == before, "a model copy was left in the temp folder"
    assert [p.name for p in cache.iterdir()] == [first.name], "an incoming folder was left in the cache"
    card = json.loads((trained_model / "card.json").read_text())
    card["training"]["note"] = "another version"
    _put(s3_env, s3_bucket, "model2/card.json", json.dumps(card).encode())
    for art in card["models"].values():
        _put(s3_env, s3_bucket, f"model2/{art['file']}", (trained_model / art["file"]).read_bytes())
    second = materialise(f"s3://{s3_bucket}/model2")
    assert second != first and second.parent == cache


def test_missing_model_bucket_or_card_is_a_model_error(
    s3_env: SeaweedS3, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aei_batch.models.loader import load_model

    monkeypatch.setenv("AEI_MODEL_CACHE", str(tmp_path / "cache"))
    for uri in ("s3://no-such-bucket-aei-model/m", f"s3://{s3_bucket}/nothing-here"):
        with pytest.raises(ModelError, match="check") as info:
            load_model(uri)
        assert info.value.exit_code == ExitCode.MODEL
    with pytest.raises(Exception) as info:
        load_model("s3://AKID:secret-value-123@bucket/m")
    assert getattr(info.value, "exit_code", None) == ExitCode.CONFIG and "secret-value" not in str(info.value)


def test_an_object_replaced_after_listing_is_file_changed(s3_env: SeaweedS3, s3_bucket: str) -> None:
    """A read carries the listed ETag (If-Match): a replaced object is FILE_CHANGED, never the new bytes under
    the old identity."""
    _put(s3_env, s3_bucket, "in/a.wav", b"first")
    (ref,) = list(storage.list_inputs(f"s3://{s3_bucket}/in/", extensions=[".wav"]))
    assert storage.read_bytes(ref.uri, etag=ref.etag) == b"first"
    _put(s3_env, s3_bucket, "in/a.wav", b"second, longer")
    with pytest.raises(FileError) as err:
        storage.read_bytes(ref.uri, etag=ref.etag)
    assert err.value.code == ErrorCode.FILE_CHANGED
    assert storage.read_bytes(ref.uri) == b"second, longer"
