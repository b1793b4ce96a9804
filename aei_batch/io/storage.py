"""One storage layer: list, read, open, stat, publish and delete, for local paths, `file://` and `s3://`.

Callers never branch on the scheme: they call these functions with a uri. What a caller can rely on:

* **Per-file problems raise `FileError`** with a stable code (`READ_FAILED`, `FILE_TOO_LARGE`,
  `NOT_REGULAR_FILE`, `UNSUPPORTED_SCHEME`): the stage turns it into that file's error row.
* **Systemic problems raise an `AeiError`**: an unreachable store `StorageError` (exit 8), rejected or
  missing credentials `CredentialsError` (exit 6), a missing bucket `InputNotFoundError` (exit 5).
  `classify_error` is the one place that decides which is which.
* **FIFOs, devices and sockets fail at once** (`NOT_REGULAR_FILE`): nothing ever blocks on a FIFO or reads
  /dev/zero up to the size limit (the file is stat'ed, then opened non-blocking and checked again).
* **Temporary files** (spools of remote objects, sink staging) live in one folder per process
  (`temp_dir`), removed at exit, also when SIGTERM is turned into SystemExit.

S3 goes through boto3 (the standard AWS credential chain and `AWS_ENDPOINT_URL` apply) and pyarrow's
S3FileSystem for datasets. Credentials are never logged or put into messages, and a URL carrying them
(`s3://KEY:SECRET@bucket`) is refused (`refuse_credentials_in_url`).

Listing (`list_inputs`) streams folders and prefixes (S3: one page of 1,000 keys at a time) and
normalises manifest uris before keying (docs/ERRORS.md, "Inputs").
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import io
import logging
import os
import posixpath
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from aei_batch.errors import (
    AeiError,
    ConfigError,
    CredentialsError,
    ErrorCode,
    FileError,
    InputNotFoundError,
    StorageError,
)
from aei_batch.io.local import not_regular as _not_regular
from aei_batch.io.local import open_regular as _open_local
from aei_batch.io.local import too_large as _too_large
from aei_batch.io.security import has_credentials_in_url, mask_url
from aei_batch.records import FileRef

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v"})
DEFAULT_EXTENSIONS = AUDIO_EXTENSIONS | VIDEO_EXTENSIONS
MANIFEST_SUFFIXES = (".csv", ".parquet")
SPOOL_BLOCK_BYTES = 8 << 20
HEAD_THREADS = 16  # parallel HEAD requests when a manifest of s3 uris carries no etag/size

_CRED_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken", "InvalidToken"}
_NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}
_UNREACHABLE = ("EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError", "ConnectTimeoutError")
_ARROW_CREDENTIALS = ("ACCESS_DENIED", "INVALID_ACCESS_KEY", "SIGNATURE_DOES_NOT_MATCH", "AccessDenied")
_ARROW_UNREACHABLE = ("NETWORK_CONNECTION", "Couldn't connect", "Connection refused", "curlCode: 7")


# ------------------------------------------------------------------ schemes and names


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def scheme(uri: str) -> str:
    """'s3', 'file' (a plain path or file://) or the uri's own scheme ('http', ...)."""
    head, sep, _ = uri.partition("://")
    if not sep or "/" in head or not head.replace("+", "").replace("-", "").replace(".", "").isalnum():
        return "file"
    return head.lower()


def local_path(uri: str) -> str:
    """The file system path of a local uri (a plain path, or `file://` with %-escapes)."""
    if uri.startswith("file://"):
        rest = uri[len("file://") :]
        if rest.startswith("localhost/"):
            rest = rest[len("localhost") :]
        return unquote(rest)
    return uri


def as_local_path(uri: str) -> str | None:
    """A path a local process can open itself, or None for a remote object (s3://, http://)."""
    return local_path(uri) if scheme(uri) == "file" else None


def split_s3(uri: str) -> tuple[str, str]:
    """`s3://bucket/key/part` -> (`bucket`, `key/part`)."""
    if not is_s3(uri):
        raise ConfigError(f"not an s3:// URI: {mask_url(uri)!r}")
    refuse_credentials_in_url(uri, "location")
    rest = uri[len("s3://") :]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise ConfigError(f"s3 URI without a bucket: {uri!r}", hint="use s3://BUCKET/PREFIX")
    return bucket, key


def join(base: str, *parts: str) -> str:
    """`base/part/...` for any scheme (no doubled or trailing slashes from the parts)."""
    out = base.rstrip("/") if base not in ("/", "s3://", "file://") else base
    for part in parts:
        part = part.strip("/")
        if part:
            out = f"{out}/{part}" if not out.endswith("/") else out + part
    return out


def refuse_credentials_in_url(uri: str, what: str) -> None:
    """ConfigError (exit 4) when `uri` (a source, output or model directory) carries credentials.

    The message shows the uri with the credentials masked."""
    if has_credentials_in_url(uri):
        raise ConfigError(
            f"the {what} {mask_url(uri)} has credentials written into the URL (refusing it)",
            hint="remove KEY:SECRET@ from the URL and give credentials through the environment "
            "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), a profile or a role",
        )


def normalize(uri: str, base: str | None = None) -> str:
    """The key form of a uri: s3 uris as given; local ones (plain or file://) absolute and normalised.

    `a.wav`, `./a.wav`, `sub/../a.wav` (relative to `base`, default the working directory) and the
    absolute path all give the same string. Symlinks are not resolved: a link is keyed by its own path,
    as when a folder is listed."""
    uri = uri.strip()
    if scheme(uri) != "file":
        return uri
    path = os.path.expanduser(local_path(uri))
    if not os.path.isabs(path):
        path = os.path.join(base or os.getcwd(), path)
    return os.path.normpath(path)


# ------------------------------------------------------------------ S3 client and error classification


def s3_client() -> Any:
    """A boto3 S3 client with adaptive retries (transient errors back off and retry).

    One client per process and per credential environment: if AWS_* variables change (tests, a
    long-lived driver), a new client is made rather than reusing one bound to stale settings.
    """
    env = tuple(os.environ.get(k, "") for k in _CLIENT_ENV)
    return _client_for(hashlib.sha256("\0".join(env).encode()).hexdigest())


_CLIENT_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_REGION",
    "AEI_S3_MAX_ATTEMPTS",
)


@functools.lru_cache(maxsize=4)
def _client_for(env_digest: str) -> Any:
    import boto3
    from botocore.config import Config

    cfg = Config(
        retries={"max_attempts": int(os.environ.get("AEI_S3_MAX_ATTEMPTS", "6")), "mode": "adaptive"},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=32,
    )
    # A new session per credential environment: boto3's default session caches the credentials it
    # resolved first, so a client made from it after AWS_* changed would still sign with the old ones.
    return boto3.session.Session().client("s3", config=cfg)


def classify_error(exc: BaseException, what: str, *, per_file: bool = False) -> AeiError | FileError:
    """The one place that maps a storage exception (botocore, pyarrow, OSError) to what it means.

    Unreachable store -> StorageError (exit 8); rejected or missing credentials -> CredentialsError (6);
    a missing bucket -> InputNotFoundError (5), or READ_FAILED when `per_file`. With `per_file` (the
    operation concerned one input file), a missing object or a local I/O error is `FileError(READ_FAILED)`;
    without it (listing, publishing, deleting) it is a StorageError. Never includes credential values.
    """
    if isinstance(exc, (AeiError, FileError)):
        return exc
    name = type(exc).__name__
    if name == "NoCredentialsError":
        return CredentialsError(
            f"no AWS credentials found while {what}",
            hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or attach a role",
        )
    if name in _UNREACHABLE:
        return _unreachable(what, name)
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore ClientError
        code = str(response.get("Error", {}).get("Code", ""))
        if code in _CRED_CODES or code == "403":
            return CredentialsError(
                f"S3 rejected the credentials while {what} ({code})",
                hint="check the access key and secret (or role) for this endpoint",
            )
        if code == "NoSuchBucket":
            if per_file:
                return FileError(
                    ErrorCode.READ_FAILED, f"cannot read the file: the bucket does not exist ({what})"
                )
            return InputNotFoundError(
                f"bucket not found while {what}", hint="check the bucket name in the URI"
            )
        if code in _NOT_FOUND_CODES:
            if per_file:
                return FileError(
                    ErrorCode.READ_FAILED, "cannot read the file: no such object (deleted after listing?)"
                )
            return InputNotFoundError(
                f"not found while {what}", hint="check the bucket name and prefix in the URI"
            )
        if per_file and code not in ("500", "503", "SlowDown", "InternalError", "ServiceUnavailable"):
            return FileError(ErrorCode.READ_FAILED, f"cannot read the file: S3 error {code}")
        return StorageError(
            f"S3 error {code} while {what}", hint="see the storage logs; nothing was committed"
        )
    if isinstance(exc, OSError):
        text = str(exc)
        if any(m in text for m in _ARROW_CREDENTIALS):
            return CredentialsError(
                f"S3 rejected the credentials while {what}",
                hint="check the access key and secret (or role) for this endpoint",
            )
        if any(m in text for m in _ARROW_UNREACHABLE):
            return _unreachable(what, name)
        if "NO_SUCH_BUCKET" in text or "NoSuchBucket" in text:
            return InputNotFoundError(
                f"bucket not found while {what}", hint="check the bucket name in the URI"
            )
        if per_file:
            return FileError(ErrorCode.READ_FAILED, f"cannot read the file: {name}: {text[:200]}")
        return StorageError(
            f"storage failure while {what}: {name}: {text[:300]}",
            hint="check the location, its permissions and free space; nothing was committed",
        )
    if per_file and name in ("ResponseStreamingError", "IncompleteReadError", "ProtocolError"):
        return FileError(ErrorCode.READ_FAILED, f"cannot read the file: {name}: {str(exc)[:200]}")
    return StorageError(f"storage failure while {what}: {name}: {str(exc)[:300]}")


def _unreachable(what: str, name: str) -> StorageError:
    return StorageError(
        f"storage unreachable while {what} ({name}, after AEI_S3_MAX_ATTEMPTS retries)",
        hint="check AWS_ENDPOINT_URL and the network; nothing was committed: rerun when it is back",
    )


def classify_s3_error(exc: BaseException, what: str) -> Exception:
    """Systemic classification of a storage exception (kept for callers of the old name)."""
    return classify_error(exc, what)


def check_s3_access(uri: str) -> None:
    """Fail fast (before scoring) when the bucket of `uri` is missing or the credentials are wrong."""
    bucket, _ = split_s3(uri)
    try:
        s3_client().head_bucket(Bucket=bucket)
    except Exception as exc:  # noqa: BLE001 - classified
        raise classify_error(exc, f"opening bucket {bucket!r}") from None


def check_access(uri: str) -> None:
    """Fail fast when the store behind `uri` refuses us (a no-op for local paths)."""
    if is_s3(uri):
        check_s3_access(uri)


# ------------------------------------------------------------------ per-process temporary folder

_TEMP_LOCK = threading.Lock()
_TEMP_ROOTS: dict[int, Path] = {}


def temp_root() -> Path:
    """This process's temporary folder (`$TMPDIR/aei-<host>-<pid>-*`), removed when the process exits.

    Spools and staging folders go under it, so a run stopped by SIGTERM (raised as SystemExit by the CLI)
    leaves nothing in $TMPDIR. Forked children get their own folder (keyed by pid)."""
    pid = os.getpid()
    with _TEMP_LOCK:
        root = _TEMP_ROOTS.get(pid)
        if root is None or not root.is_dir():
            host = socket.gethostname().split(".")[0][:32] or "host"
            root = Path(tempfile.mkdtemp(prefix=f"aei-{host}-{pid}-"))
            _TEMP_ROOTS[pid] = root
            atexit.register(_remove_temp_root, pid, root)
            # multiprocessing children (the pool's workers) leave through os._exit, which skips atexit;
            # they do run multiprocessing's finalizers on the way out.
            from multiprocessing import util

            util.Finalize(None, _remove_temp_root, args=(pid, root), exitpriority=10)
        return root


def _remove_temp_root(pid: int, root: Path) -> None:
    if os.getpid() == pid:  # a forked child must not delete its parent's folder
        shutil.rmtree(root, ignore_errors=True)


def temp_dir(prefix: str) -> Path:
    """A new folder under this process's temporary folder (remove it when done; exit removes the rest)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=temp_root()))


# ------------------------------------------------------------------ reading one file


def _unsupported(uri: str) -> FileError:
    return FileError(
        ErrorCode.UNSUPPORTED_SCHEME,
        f"{scheme(uri)}:// uris are not read (supported: local paths, file://, s3://)",
    )


def read_bytes(uri: str, *, max_bytes: int | None = None, etag: str | None = None) -> bytes:
    """A file's bytes. Per-file problems raise FileError (READ_FAILED, FILE_TOO_LARGE, NOT_REGULAR_FILE,
    UNSUPPORTED_SCHEME); an unreachable store StorageError; rejected credentials CredentialsError.

    `etag`: for an S3 object, read it only if it still has this ETag (the listed one), else FILE_CHANGED:
    the object was replaced since it was listed."""
    kind = scheme(uri)
    if kind == "file":
        fd = _open_local(local_path(uri), max_bytes)
        try:
            with os.fdopen(fd, "rb") as fh:
                data = fh.read() if max_bytes is None else fh.read(max_bytes + 1)
        except OSError as exc:
            raise classify_error(exc, "reading a file", per_file=True) from None
    elif kind == "s3":
        bucket, key = split_s3(uri)
        try:
            cond = {"IfMatch": etag} if etag else {}
            body = s3_client().get_object(Bucket=bucket, Key=key, **cond)["Body"]
            try:
                data = body.read() if max_bytes is None else body.read(max_bytes + 1)
            finally:
                body.close()
        except Exception as exc:  # noqa: BLE001 - classified
            if etag and ("PreconditionFailed" in str(exc) or "(412)" in str(exc)):
                raise FileError(
                    ErrorCode.FILE_CHANGED,
                    "the object was replaced since it was listed (its ETag changed): rerun to score it",
                ) from None
            raise classify_error(exc, "reading files", per_file=True) from None
    else:
        raise _unsupported(uri)
    if max_bytes is not None and len(data) > max_bytes:
        raise _too_large(max_bytes)
    return data


def _head(uri: str) -> dict[str, Any]:
    bucket, key = split_s3(uri)
    try:
        return dict(s3_client().head_object(Bucket=bucket, Key=key))
    except Exception as exc:  # noqa: BLE001 - classified
        raise classify_error(exc, "reading files", per_file=True) from None


def check_readable(uri: str, *, max_bytes: int | None = None) -> None:
    """The per-file errors `read_bytes` would raise, now, without reading the file."""
    kind = scheme(uri)
    if kind == "file":
        os.close(_open_local(local_path(uri), max_bytes))
    elif kind == "s3":
        size = int(_head(uri).get("ContentLength", 0))
        if max_bytes is not None and size > max_bytes:
            raise _too_large(max_bytes, size)
    else:
        raise _unsupported(uri)


@contextlib.contextmanager
def open_source(
    uri: str, *, max_bytes: int | None = None, block_bytes: int = SPOOL_BLOCK_BYTES
) -> Iterator[str]:
    """A local path for `uri`: a local file as it is (checked now), a remote object spooled to a temporary
    file in `block_bytes` pieces (memory stays bounded for any size) and removed on exit.

    Errors as `read_bytes`: FileError per file, StorageError / CredentialsError for the store."""
    kind = scheme(uri)
    if kind == "file":
        check_readable(uri, max_bytes=max_bytes)
        yield local_path(uri)
        return
    if kind != "s3":
        raise _unsupported(uri)
    bucket, key = split_s3(uri)
    fd, tmp = tempfile.mkstemp(prefix="aei-spool-", suffix=Path(key).suffix[:16], dir=temp_root())
    try:
        try:
            body = s3_client().get_object(Bucket=bucket, Key=key)["Body"]
            with os.fdopen(fd, "wb") as out:
                total = 0
                try:
                    for piece in iter(lambda: body.read(block_bytes), b""):
                        total += len(piece)
                        if max_bytes is not None and total > max_bytes:
                            raise _too_large(max_bytes)
                        out.write(piece)
                finally:
                    body.close()
        except FileError:
            raise
        except Exception as exc:  # noqa: BLE001 - classified
            raise classify_error(exc, "reading files", per_file=True) from None
        yield tmp
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _local_etag(st: os.stat_result) -> str:
    """A cheap content identity for local files: size and modification time (ns), hashed."""
    return hashlib.sha1(f"{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]


def stat_uri(uri: str) -> tuple[int, str]:
    """Size and etag of one file (the listing's formula). Per-file problems raise FileError."""
    kind = scheme(uri)
    if kind == "s3":
        head = _head(uri)
        return int(head["ContentLength"]), str(head["ETag"]).strip('"')
    if kind != "file":
        raise _unsupported(uri)
    try:
        st = os.stat(local_path(uri))
    except OSError as exc:
        raise classify_error(exc, "reading a file", per_file=True) from None
    bad = _not_regular(st.st_mode)
    if bad is not None:
        raise bad
    return st.st_size, _local_etag(st)


def current_etag(uri: str) -> str | None:
    """The file's identity now, by the listing's formula; None when it is gone or unreadable.

    Compare it with the listed etag to detect a file that changed while it was scored. An unreachable
    store or rejected credentials still raise (StorageError, CredentialsError)."""
    try:
        return stat_uri(uri)[1]
    except FileError:
        return None


# ------------------------------------------------------------------ outputs: filesystem, publish, delete


def filesystem(uri: str) -> tuple[Any, str]:
    """(pyarrow.fs.FileSystem, path inside it) for a local folder, file:// or an s3:// location."""
    from pyarrow import fs as pafs

    path = fs_path(uri)
    if is_s3(uri):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        kw: dict[str, Any] = (
            {"endpoint_override": endpoint, "scheme": endpoint.split(":")[0]} if endpoint else {}
        )
        region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"
        return pafs.S3FileSystem(region=region, **kw), path
    return pafs.LocalFileSystem(), path


def fs_path(uri: str) -> str:
    """The path of `uri` inside its `filesystem(uri)`: `bucket/key` for s3, an absolute path locally."""
    if is_s3(uri):
        split_s3(uri)  # refuses credentials in the URL
        return uri[len("s3://") :].rstrip("/")
    if scheme(uri) != "file":
        raise ConfigError(
            f"unsupported location {mask_url(uri)!r}", hint="use a local path, file:// or s3://"
        )
    return os.path.abspath(local_path(uri))


def exists(uri: str) -> bool:
    """Whether a file (or, locally, a folder) exists at `uri`."""
    if scheme(uri) == "file":
        return os.path.exists(local_path(uri))
    bucket, key = split_s3(uri)
    try:
        s3_client().head_object(Bucket=bucket, Key=key)
        return True
    except Exception as exc:  # noqa: BLE001 - classified
        err = classify_error(exc, f"checking {uri}", per_file=True)
        if isinstance(err, FileError):
            return False
        raise err from None


def publish(local_file: str | Path, dest_uri: str) -> str:
    """Make `local_file` appear at `dest_uri` in one step (a rename on the same local filesystem, one PUT
    on S3). Failures raise StorageError / CredentialsError; returns `dest_uri`."""
    try:
        if is_s3(dest_uri):
            bucket, key = split_s3(dest_uri)
            s3_client().upload_file(str(local_file), bucket, key)
        else:
            dest = Path(local_path(dest_uri))
            dest.parent.mkdir(parents=True, exist_ok=True)
            hidden = dest.parent / f".{dest.name}.inflight"  # same folder, so the rename is atomic
            try:
                shutil.copyfile(local_file, hidden)
                os.replace(hidden, dest)
            finally:
                hidden.unlink(missing_ok=True)
    except (AeiError, FileError):
        raise
    except Exception as exc:  # noqa: BLE001 - classified
        raise classify_error(exc, f"publishing {dest_uri}") from None
    return dest_uri


def delete(uris: Iterable[str]) -> None:
    """Delete files (missing ones are fine). Failures raise StorageError / CredentialsError."""
    by_bucket: dict[str, list[str]] = {}
    for uri in uris:
        if is_s3(uri):
            bucket, key = split_s3(uri)
            by_bucket.setdefault(bucket, []).append(key)
        else:
            try:
                Path(local_path(uri)).unlink(missing_ok=True)
            except OSError as exc:
                raise classify_error(exc, f"deleting {uri}") from None
    for bucket, keys in by_bucket.items():
        for i in range(0, len(keys), 1000):
            chunk = [{"Key": k} for k in keys[i : i + 1000]]
            try:
                s3_client().delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
            except Exception as exc:  # noqa: BLE001 - classified
                raise classify_error(exc, f"deleting files in s3://{bucket}") from None


def list_files(prefix_uri: str) -> list[str]:
    """Every file under a folder / s3 prefix, as paths relative to it (sorted; [] when there is none)."""
    if is_s3(prefix_uri):
        bucket, prefix = split_s3(prefix_uri.rstrip("/") + "/")
        try:
            pages = s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            return sorted(o["Key"][len(prefix) :] for page in pages for o in page.get("Contents", []))
        except Exception as exc:  # noqa: BLE001 - classified
            raise classify_error(exc, f"listing {prefix_uri}") from None
    base = Path(local_path(prefix_uri))
    if not base.is_dir():
        return []
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())


# ------------------------------------------------------------------ listing inputs


def list_inputs(
    source: str,
    *,
    extensions: Iterable[str] | None = None,
    allowed_roots: list[str] | None = None,
) -> Iterator[FileRef]:
    """Yield the files under `source` (a folder, an s3:// prefix, a manifest, or one file), sorted by uri.

    Per-file problems found while listing come back as refs with `error_code` set (one error row each).
    Raises ConfigError for credentials in the URL or an unsupported scheme, InputNotFoundError when the
    source does not exist, CredentialsError when S3 refuses us. `allowed_roots` only concerns manifests.
    """
    source = source.strip()
    refuse_credentials_in_url(source, "input")
    kind = scheme(source)
    if kind not in ("file", "s3"):
        raise ConfigError(
            f"unsupported input location {source!r}", hint="use a local folder, file://, s3:// or a manifest"
        )
    exts = frozenset(
        e.lower() if e.startswith(".") else f".{e.lower()}" for e in (extensions or DEFAULT_EXTENSIONS)
    )
    if source.lower().endswith(MANIFEST_SUFFIXES):
        yield from list_manifest(source, allowed_roots=allowed_roots)
    elif kind == "s3":
        yield from list_s3(source, exts)
    else:
        yield from list_local(local_path(source), exts)


_BAD_NAME = "the file name is not valid UTF-8"


def _error_ref(uri: str, code: ErrorCode, message: str, extra: dict[str, str] | None = None) -> FileRef:
    """A ref whose error row is decided at listing (the scoring stage writes it without reading the file)."""
    return FileRef(uri, extra=dict(extra or {}), error_code=str(code), error_message=message)


def _escaped(path: str) -> str:
    """A path whose name is not valid UTF-8, shown with its bad bytes escaped (`caf\\xe9.wav`)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _is_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _local_ref(path: Path) -> FileRef:
    """The ref of one listed local file: size and etag, or an error decided now."""
    uri = str(path.absolute())
    if not _is_utf8(uri):
        return _error_ref(
            _escaped(uri), ErrorCode.BAD_FILE_NAME, f"{_BAD_NAME}: {_escaped(uri)!r}; rename it"
        )
    try:
        st = path.stat()
    except OSError:
        return FileRef(uri)  # a dangling link or a file gone since the walk: scored as a READ_FAILED row
    bad = _not_regular(st.st_mode)
    if bad is not None:
        return _error_ref(uri, bad.code, bad.message)
    return FileRef(uri, st.st_size, _local_etag(st))


def list_local(source: str, exts: frozenset[str]) -> Iterator[FileRef]:
    """Walk a local folder recursively. Symlinked folders are followed once (loops are cut); a folder that
    cannot be read is logged with a warning and counted (its files cannot be known, so they have no row)."""
    root = Path(source).expanduser()
    if root.exists() and not root.is_dir():
        yield _local_ref(root.resolve())
        return
    if not root.is_dir():
        raise InputNotFoundError(f"input folder not found: {source}", hint="check the path")
    seen_dirs: set[tuple[int, int]] = set()
    paths: list[Path] = []
    unreadable: list[str] = []

    def on_error(exc: OSError) -> None:
        unreadable.append(_escaped(str(exc.filename)))
        log.warning(
            "cannot read folder %s (%s): its files are not listed", _escaped(str(exc.filename)), exc.strerror
        )

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=on_error):
        try:
            st = os.stat(dirpath)
        except OSError as exc:
            on_error(exc)
            dirnames[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen_dirs:
            log.warning("skipping %s: symlink loop (already visited)", _escaped(dirpath))
            dirnames[:] = []
            continue
        seen_dirs.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and Path(name).suffix.lower() in exts:
                paths.append(Path(dirpath) / name)
    if unreadable:
        log.warning(
            "%d folder(s) under %s could not be read and were skipped (first: %s); "
            "give the job read and execute permission on them",
            len(unreadable),
            source,
            unreadable[0],
        )
    for p in sorted(paths):
        yield _local_ref(p)


def list_s3(source: str, exts: frozenset[str]) -> Iterator[FileRef]:
    """List an s3:// prefix page by page (ListObjectsV2), keeping ETag and size."""
    bucket, prefix = split_s3(source)
    client = s3_client()
    paginator = client.get_paginator("list_objects_v2")
    try:
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if key.endswith("/") or Path(key).suffix.lower() not in exts:
                    continue
                yield FileRef(f"s3://{bucket}/{key}", int(obj["Size"]), obj["ETag"].strip('"'))
    except Exception as exc:  # noqa: BLE001 - classified
        raise classify_error(exc, f"listing s3://{bucket}/{prefix}") from None


# ------------------------------------------------------------------ manifests


def _read_manifest_table(source: str) -> Any:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if is_s3(source):
        bucket, key = split_s3(source)
        try:
            body = s3_client().get_object(Bucket=bucket, Key=key)["Body"]
            src: Any = io.BytesIO(body.read())
        except Exception as exc:  # noqa: BLE001 - classified
            err = classify_error(exc, f"reading the manifest {source}")
            if isinstance(err, FileError) or (
                isinstance(err, InputNotFoundError) and "bucket" not in str(err)
            ):
                raise InputNotFoundError(f"manifest not found: {source}", hint="check the uri") from None
            raise err from None
    else:
        path = local_path(source)
        if not Path(path).is_file():
            raise InputNotFoundError(f"manifest not found: {source}", hint="check the path")
        src = path
    try:
        if source.lower().endswith(".csv"):
            opts = pacsv.ConvertOptions(strings_can_be_null=True)
            return pacsv.read_csv(src, convert_options=opts)
        return pq.read_table(src)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a config problem
        raise ConfigError(f"cannot read manifest {source}: {exc}") from None


def _manifest_size(value: Any, row: int, uri: str) -> int | None:
    if value is None or (isinstance(value, float) and value != value) or str(value).strip() == "":
        return None
    try:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError
        size = int(str(value).strip()) if not isinstance(value, (int, float)) else int(value)
        if size < 0:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(
            f"manifest row {row} ({uri}) has size {str(value)[:40]!r}, which is not a whole number of bytes",
            hint="fix the 'size' column (bytes, an integer) or leave it empty to have it read from storage",
        ) from None
    return size


class _Roots:
    """The locations a manifest may name: local folders (checked on resolved paths) and s3 prefixes."""

    def __init__(self, manifest: str, allowed: list[str] | None) -> None:
        self.local: list[str] = []
        self.s3: list[str] = []
        if scheme(manifest) == "file":
            self.local.append(os.path.realpath(os.path.dirname(os.path.abspath(local_path(manifest)))))
        for root in allowed or []:
            refuse_credentials_in_url(root, "allowed root")
            if is_s3(root):
                self.s3.append(root.rstrip("/") + "/")
            elif scheme(root) == "file":
                self.local.append(os.path.realpath(normalize(root)))
            else:
                raise ConfigError(
                    f"unsupported allowed root {root!r}", hint="use a local folder or s3://BUCKET/PREFIX"
                )

    def allows(self, uri: str) -> bool:
        if is_s3(uri):
            return not self.s3 or any(uri.startswith(p) for p in self.s3)
        real = os.path.realpath(uri)  # a symlink inside the root that points out of it is outside
        return any(real == r or real.startswith(r.rstrip("/") + "/") for r in self.local)

    def describe(self) -> str:
        return ", ".join([*self.local, *(self.s3 or ["any s3:// uri"])])


def list_manifest(source: str, *, allowed_roots: list[str] | None = None) -> Iterator[FileRef]:
    """Read a manifest (CSV or Parquet) with a `uri` column; other columns are carried as `extra`.

    Uris are normalised (relative paths are relative to the manifest; `file://` is a local path) and
    duplicates dropped with a warning. Local uris must lie under the manifest's folder or one of
    `allowed_roots` (symlinks resolved); s3 uris are allowed unless `allowed_roots` names s3 prefixes,
    then they must lie under one. Refused uris, FIFOs and other schemes become error refs. `size`/`etag`
    come from the manifest's columns when present, else from storage (stat, or a HEAD per s3 object)."""
    refuse_credentials_in_url(source, "manifest")
    table = _read_manifest_table(source)
    if "uri" not in table.column_names:
        raise ConfigError(
            f"manifest {source} has no 'uri' column (columns: {table.column_names})",
            hint="add a header row with a 'uri' column",
        )
    base = os.path.dirname(os.path.abspath(local_path(source))) if scheme(source) == "file" else None
    roots = _Roots(source, allowed_roots)
    refs: dict[str, FileRef] = {}
    duplicates = 0
    for number, row in enumerate(table.to_pylist(), start=1):
        raw = row.pop("uri")
        if raw is None or str(raw).strip() == "":
            continue
        raw = str(raw).strip()
        if has_credentials_in_url(raw):
            raise ConfigError(
                f"manifest row {number} names {mask_url(raw)}, with credentials written into the URL",
                hint="remove KEY:SECRET@ from the manifest's uris; give credentials through the environment",
            )
        uri = _manifest_uri(raw, source, base)
        if uri in refs:
            duplicates += 1
            continue
        size = _manifest_size(row.pop("size", None), number, uri)
        etag = row.pop("etag", None)
        extra = {k: str(v) for k, v in row.items() if v is not None}
        refs[uri] = _manifest_ref(uri, size, str(etag) if etag else None, extra, roots)
    if duplicates:
        log.warning("manifest %s names %d file(s) more than once; kept one row per file", source, duplicates)
    yield from _fill_identity(sorted(refs.values(), key=lambda r: r.uri))


def _manifest_uri(raw: str, manifest: str, base: str | None) -> str:
    """A manifest row's uri, normalised; relative paths are relative to the manifest (local or s3)."""
    if is_s3(manifest) and scheme(raw) == "file" and not raw.startswith(("/", "file://", "~")):
        bucket, key = split_s3(manifest)
        rel = posixpath.normpath(posixpath.join(posixpath.dirname(key), raw))
        while rel.startswith("../"):  # cannot climb above the bucket
            rel = rel[3:]
        return f"s3://{bucket}/{'' if rel in ('.', '..') else rel}"
    return normalize(raw, base)


def _manifest_ref(
    uri: str, size: int | None, etag: str | None, extra: dict[str, str], roots: _Roots
) -> FileRef:
    kind = scheme(uri)
    if kind not in ("file", "s3"):
        e = _unsupported(uri)
        return _error_ref(uri, e.code, e.message, extra)
    if not _is_utf8(uri):
        return _error_ref(_escaped(uri), ErrorCode.BAD_FILE_NAME, f"{_BAD_NAME}: {_escaped(uri)!r}", extra)
    if not roots.allows(uri):
        return _error_ref(
            uri,
            ErrorCode.OUTSIDE_ROOTS,
            f"outside the allowed roots ({roots.describe()}); not opened. "
            "Allow its folder with --allow-root, or move the manifest next to the files",
            extra,
        )
    return FileRef(uri, size, etag, extra)


def _fill_identity(refs: list[FileRef]) -> Iterator[FileRef]:
    """Refs without size or etag get them from storage (local stat now, s3 HEADs in parallel threads).

    Rejected credentials or an unreachable store raise here, before any scoring."""

    def fill(ref: FileRef) -> FileRef:
        if ref.error_code is not None or (ref.size is not None and ref.etag is not None):
            return ref
        try:
            size, etag = stat_uri(ref.uri)
        except FileError as exc:
            if exc.code == ErrorCode.NOT_REGULAR_FILE:
                return _error_ref(ref.uri, exc.code, exc.message, ref.extra)
            return ref  # missing or unreadable: the read gives its READ_FAILED row
        return FileRef(ref.uri, ref.size if ref.size is not None else size, ref.etag or etag, ref.extra)

    remote = [r for r in refs if is_s3(r.uri) and r.error_code is None and (r.size is None or r.etag is None)]
    if len(remote) > 1:
        with ThreadPoolExecutor(HEAD_THREADS) as pool:
            filled = dict(zip((r.uri for r in remote), pool.map(fill, remote), strict=True))
    else:
        filled = {r.uri: fill(r) for r in remote}
    for ref in refs:
        yield filled.get(ref.uri) or fill(ref)
