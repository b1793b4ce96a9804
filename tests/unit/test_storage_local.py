"""aei_batch.io.storage on local files: hostile inputs (FIFOs, devices, non-UTF-8 names, unreadable folders),
manifest identity (normalised uris, etag/size, roots, schemes), secrets in URLs and the temp folder."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

from aei_batch.errors import ConfigError, ErrorCode, FileError, InputNotFoundError, StorageError
from aei_batch.io import storage
from aei_batch.io.security import redact
from tests.support import media as M


def _wav(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(M.noise_wav_bytes(seconds=0.3, seed=seed))
    return path


def _fails_fast(fn, *args, **kw) -> FileError:
    """Run `fn` in a thread and require it to raise FileError within 5 s (a FIFO must never block)."""
    box: dict[str, BaseException | None] = {"exc": None}

    def target() -> None:
        try:
            fn(*args, **kw)
        except BaseException as exc:  # noqa: BLE001 - inspected below
            box["exc"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(5)
    assert not t.is_alive(), f"{fn.__name__} blocked"
    assert isinstance(box["exc"], FileError), box["exc"]
    return box["exc"]


# ------------------------------------------------------------------ FIFOs, devices, reads


def test_fifo_and_devices_fail_at_once_with_not_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "x.wav"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.wav"
    zero.symlink_to("/dev/zero")
    for target in (str(fifo), f"file://{fifo}", str(zero)):
        for fn in (storage.read_bytes, storage.check_readable):
            err = _fails_fast(fn, target, max_bytes=1 << 20)
            assert err.code == ErrorCode.NOT_REGULAR_FILE, (target, err.message)
        with pytest.raises(FileError) as info, storage.open_source(target, max_bytes=None):
            pass
        assert info.value.code == ErrorCode.NOT_REGULAR_FILE
    assert "FIFO" in _fails_fast(storage.read_bytes, str(fifo)).message
    assert "device" in _fails_fast(storage.read_bytes, str(zero)).message


def test_read_bytes_local_codes(tmp_path: Path) -> None:
    wav = _wav(tmp_path / "a.wav")
    assert storage.read_bytes(str(wav), max_bytes=None) == wav.read_bytes()
    assert storage.read_bytes(f"file://{wav}", max_bytes=None) == wav.read_bytes()
    with pytest.raises(FileError) as info:
        storage.read_bytes(str(wav), max_bytes=10)
    assert info.value.code == ErrorCode.FILE_TOO_LARGE
    with pytest.raises(FileError) as info:
        storage.read_bytes(str(tmp_path / "gone.wav"), max_bytes=None)
    assert info.value.code == ErrorCode.READ_FAILED
    with pytest.raises(FileError) as info:
        storage.read_bytes("https://example.invalid/a.wav", max_bytes=None)
    assert info.value.code == ErrorCode.UNSUPPORTED_SCHEME
    assert storage.as_local_path(f"file://{tmp_path}/a%20b.wav") == f"{tmp_path}/a b.wav"
    assert storage.as_local_path("s3://bucket/a.wav") is None
    assert storage.as_local_path("https://host/a.wav") is None


def test_current_etag_follows_content_and_listing_formula(tmp_path: Path) -> None:
    wav = _wav(tmp_path / "a.wav")
    (listed,) = storage.list_inputs(str(tmp_path))
    assert storage.current_etag(str(wav)) == listed.etag
    wav.write_bytes(M.noise_wav_bytes(seconds=0.5, seed=3))
    assert storage.current_etag(str(wav)) != listed.etag
    wav.unlink()
    assert storage.current_etag(str(wav)) is None


def test_publish_delete_exists_join_and_filesystem(tmp_path: Path) -> None:
    src = tmp_path / "staged.bin"
    src.write_bytes(b"rows")
    dest = storage.join(str(tmp_path / "out"), "run_date=2026-01-01/", "/part.parquet")
    assert dest == f"{tmp_path}/out/run_date=2026-01-01/part.parquet"
    assert not storage.exists(dest)
    storage.publish(src, dest)
    assert storage.exists(dest) and Path(dest).read_bytes() == b"rows"
    assert not list(Path(dest).parent.glob(".*")), "an in-flight file was left behind"
    assert storage.list_files(str(tmp_path / "out")) == ["run_date=2026-01-01/part.parquet"]
    fs, path = storage.filesystem(os.path.relpath(dest))
    assert path == dest and fs.get_file_info(path).size == 4
    storage.delete([dest, dest + ".missing"])
    assert not storage.exists(dest)
    assert storage.join("s3://b/prefix/", "x") == "s3://b/prefix/x"


def test_publish_into_a_read_only_folder_is_a_storage_error(tmp_path: Path) -> None:
    src = tmp_path / "staged.bin"
    src.write_bytes(b"rows")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError, match="publishing"):
        storage.publish(src, str(blocker / "sub" / "part.parquet"))


# ------------------------------------------------------------------ folder listing


def test_folder_listing_turns_fifos_and_bad_names_into_error_refs(tmp_path: Path) -> None:
    root = tmp_path / "in"
    _wav(root / "ok.wav")
    os.mkfifo(root / "pipe.wav")
    bad = os.fsencode(str(root)) + b"/caf\xe9.wav"
    with open(bad, "wb") as fh:
        fh.write(M.noise_wav_bytes(seconds=0.3))
    refs = {r.uri: r for r in storage.list_inputs(str(root))}
    assert len(refs) == 3
    assert refs[str(root / "ok.wav")].error_code is None and refs[str(root / "ok.wav")].etag
    assert refs[str(root / "pipe.wav")].error_code == ErrorCode.NOT_REGULAR_FILE
    (bad_ref,) = [r for r in refs.values() if r.error_code == ErrorCode.BAD_FILE_NAME]
    assert bad_ref.uri == f"{root}/caf\\xe9.wav"
    assert "caf\\\\xe9.wav" in (bad_ref.error_message or "")
    bad_ref.uri.encode("utf-8")  # storable in a table


def test_unreadable_subfolder_is_warned_and_counted() -> None:
    """Root ignores permissions, so the listing runs as `nobody` in a forked child."""
    base = Path(tempfile.mkdtemp(prefix="aei-perm-"))
    try:
        os.chmod(base, 0o755)
        _wav(base / "in" / "ok.wav")
        _wav(base / "in" / "locked" / "hidden.wav")
        for p in (base / "in", base / "in" / "ok.wav"):
            os.chmod(p, 0o755)
        os.chmod(base / "in" / "locked", 0o000)
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: drop to nobody, list, report through the pipe
            status = 1
            try:
                os.setgid(65534)
                os.setuid(65534)
                out = os.fdopen(write_fd, "w")
                handler = logging.StreamHandler(out)
                logging.getLogger("aei_batch.io.storage").addHandler(handler)
                uris = [r.uri for r in storage.list_inputs(str(base / "in"))]
                out.write(f"URIS {uris}\n")
                out.flush()
                status = 0
            finally:
                os._exit(status)
        os.close(write_fd)
        with os.fdopen(read_fd) as fh:
            text = fh.read()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, text
        assert f"URIS {[str(base / 'in' / 'ok.wav')]}" in text
        assert "1 folder(s) under" in text and "locked" in text, text
    finally:
        os.chmod(base / "in" / "locked", 0o755)
        shutil.rmtree(base, ignore_errors=True)


# ------------------------------------------------------------------ manifests


def _manifest(path: Path, header: str, *rows: str) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_manifest_uris_are_normalised_to_one_row_with_real_identity(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wav = _wav(tmp_path / "a.wav")
    (tmp_path / "sub").mkdir()
    m = _manifest(
        tmp_path / "m.csv",
        "uri,speaker",
        "a.wav,s1",
        "./a.wav,s1",
        f"{wav},s1",
        "sub/../a.wav,s1",
        f"file://{wav},s1",
    )
    with caplog.at_level(logging.WARNING, logger="aei_batch.io.storage"):
        refs = list(storage.list_inputs(str(m)))
    assert [r.uri for r in refs] == [str(wav)]
    st = wav.stat()
    assert refs[0].size == st.st_size and refs[0].etag == storage.current_etag(str(wav))
    assert refs[0].extra == {"speaker": "s1"}
    assert "4 file(s) more than once" in caplog.text


def test_manifest_etag_and_size_columns_are_used_and_checked(tmp_path: Path) -> None:
    _wav(tmp_path / "a.wav")
    _wav(tmp_path / "b.wav", seed=1)
    m = _manifest(tmp_path / "m.csv", "uri,size,etag", "a.wav,123,abc", "b.wav,,")
    a, b = storage.list_inputs(str(m))
    assert (a.size, a.etag) == (123, "abc")
    assert b.size == (tmp_path / "b.wav").stat().st_size and b.etag
    bad = _manifest(tmp_path / "bad.csv", "uri,size", "a.wav,12", "b.wav,twelve")
    with pytest.raises(ConfigError, match=r"row 2 .*b\.wav.*'twelve'") as info:
        list(storage.list_inputs(str(bad)))
    assert info.value.exit_code == 4


def test_manifest_roots_schemes_and_fifos_become_error_refs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _wav(data / "in.wav")
    outside = _wav(tmp_path / "elsewhere" / "out.wav")
    os.mkfifo(data / "pipe.wav")
    (data / "link.wav").symlink_to(outside)
    m = _manifest(
        data / "m.csv",
        "uri",
        "in.wav",
        "../elsewhere/out.wav",
        "/etc/passwd",
        "/no/such/file.wav",
        "link.wav",
        "pipe.wav",
        "https://example.invalid/x.wav",
    )
    refs = {r.uri: r for r in storage.list_inputs(str(m))}
    codes = {u: r.error_code for u, r in refs.items()}
    assert codes[str(data / "in.wav")] is None
    for refused in (str(outside), "/etc/passwd", "/no/such/file.wav", str(data / "link.wav")):
        assert codes[refused] == ErrorCode.OUTSIDE_ROOTS, refused
        assert refs[refused].size is None and refs[refused].etag is None  # never stat'ed
        assert "--allow-root" in (refs[refused].error_message or "")
    assert codes[str(data / "pipe.wav")] == ErrorCode.NOT_REGULAR_FILE
    assert codes["https://example.invalid/x.wav"] == ErrorCode.UNSUPPORTED_SCHEME
    allowed = {
        r.uri: r.error_code
        for r in storage.list_inputs(str(m), allowed_roots=[str(tmp_path / "elsewhere")])
        if r.uri in (str(outside), str(data / "link.wav"))
    }
    assert allowed == {str(outside): None, str(data / "link.wav"): None}


def test_allowed_s3_roots_restrict_s3_uris(tmp_path: Path) -> None:
    m = _manifest(tmp_path / "m.csv", "uri,size,etag", "s3://good/a.wav,1,e", "s3://other/b.wav,1,e")
    refs = {r.uri: r.error_code for r in storage.list_inputs(str(m), allowed_roots=["s3://good/"])}
    assert refs == {"s3://good/a.wav": None, "s3://other/b.wav": ErrorCode.OUTSIDE_ROOTS}


# ------------------------------------------------------------------ secrets, sources


SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def test_credentials_in_urls_are_refused_and_masked(tmp_path: Path) -> None:
    for uri in (f"s3://AKIDEXAMPLE:{SECRET}@bucket/x", f"s3://AKIDEXAMPLE:{SECRET}@bucket/m.csv"):
        with pytest.raises(ConfigError) as info:
            list(storage.list_inputs(uri))
        assert info.value.exit_code == 4
        assert SECRET not in str(info.value) and "s3://***@bucket/" in str(info.value)
    with pytest.raises(ConfigError) as info:
        storage.filesystem(f"s3://AKIDEXAMPLE:{SECRET}@bucket/out")
    assert SECRET not in str(info.value)
    m = _manifest(tmp_path / "m.csv", "uri", f"s3://AKIDEXAMPLE:{SECRET}@bucket/a.wav")
    with pytest.raises(ConfigError, match="row 1") as info:
        list(storage.list_inputs(str(m)))
    assert SECRET not in str(info.value)


def test_redact_masks_userinfo_in_any_text_and_every_error() -> None:
    text = f"failed on s3://AKID:{SECRET}@bucket/x and http://u:p@host/y"
    masked = redact(text)
    assert SECRET not in masked and "s3://***@bucket/x" in masked and "http://***@host/y" in masked
    assert SECRET not in str(StorageError(text, hint=text))
    assert SECRET not in FileError(ErrorCode.READ_FAILED, text).message


def test_sources_of_other_schemes_and_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unsupported input"):
        list(storage.list_inputs("https://example.invalid/folder/"))
    with pytest.raises(InputNotFoundError):
        list(storage.list_inputs(str(tmp_path / "missing")))
    _wav(tmp_path / "in" / "a.wav")
    assert [r.uri for r in storage.list_inputs(f"file://{tmp_path}/in")] == [str(tmp_path / "in" / "a.wav")]


# ------------------------------------------------------------------ temp folder


def test_staging_folders_are_removed_when_sigterm_ends_the_process(tmp_path: Path) -> None:
    """A run stopped by SIGTERM (raised as SystemExit, as the CLI does) leaves nothing in $TMPDIR."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    code = textwrap.dedent(
        """
        import signal, sys, time
        def stop(*_):
            raise SystemExit(143)
        signal.signal(signal.SIGTERM, stop)
        import pyarrow as pa
        from aei_batch.io.sinks.segments import ParquetSegmentsSink
        from aei_batch.io.sinks.parquet import ParquetSink
        from aei_batch.io import storage
        out = sys.argv[1]
        sinks = [ParquetSegmentsSink(out, "r1", "2026-01-01"), ParquetSink(out, "r1", "2026-01-01")]
        with storage.open_source(sys.argv[2]):
            print("ready", flush=True)
            time.sleep(60)
        """
    )
    wav = _wav(tmp_path / "a.wav")
    env = {**os.environ, "TMPDIR": str(tmpdir), "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "out"), str(wav)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        staged = list(tmpdir.rglob("aei-*"))
        assert any(p.name.startswith("aei-segments-") for p in staged), staged
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 5
    while list(tmpdir.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(tmpdir.iterdir()) == []


@pytest.mark.parametrize("where", ["source", "output", "model"])
def test_cli_refuses_credentials_in_urls_with_exit_4_and_never_prints_them(
    where: str, tmp_path: Path
) -> None:
    _wav(tmp_path / "in" / "a.wav")
    bad = f"s3://AKIDEXAMPLE:{SECRET}@bucket/x"
    args = {"source": str(tmp_path / "in"), "output": str(tmp_path / "out"), "model": str(tmp_path / "model")}
    args[where] = bad
    exe = Path(sys.executable).with_name("aei-batch")
    proc = subprocess.run(
        [str(exe), "score", args["source"], "-o", args["output"], "-m", args["model"], "--runner", "local"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
    )
    assert proc.returncode == 4, proc.stderr[-2000:]
    assert "credentials written into the URL" in proc.stderr and "Traceback" not in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr and "AKIDEXAMPLE" not in proc.stderr
    assert not (tmp_path / "out").exists()


def _worker_temp_root() -> str:
    return str(storage.temp_dir("aei-spool-test-").parent)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_workers_remove_their_temp_folder_when_they_exit(method: str) -> None:
    """Pool workers leave through os._exit (no atexit): multiprocessing's finalizers remove the folder."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(method)) as pool:
        root = pool.submit(_worker_temp_root).result(timeout=120)
        assert os.path.isdir(root) and root != str(storage.temp_root())
    assert not os.path.exists(root)
