"""List and read inputs: local folders, s3:// prefixes and manifests (CSV or Parquet with a `uri` column).

S3 goes through boto3, so the standard AWS credential chain and `AWS_ENDPOINT_URL` apply. Credentials
are never logged or put into messages. Listing streams (one page of 1,000 keys at a time).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from aei_batch.errors import ConfigError, CredentialsError, InputNotFoundError, StorageError
from aei_batch.records import FileRef

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v"})
DEFAULT_EXTENSIONS = AUDIO_EXTENSIONS | VIDEO_EXTENSIONS
MANIFEST_SUFFIXES = (".csv", ".parquet")

_CRED_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken", "InvalidToken"}


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    """`s3://bucket/key/part` -> (`bucket`, `key/part`)."""
    if not is_s3(uri):
        raise ConfigError(f"not an s3:// URI: {uri!r}")
    rest = uri[len("s3://") :]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise ConfigError(f"s3 URI without a bucket: {uri!r}", hint="use s3://BUCKET/PREFIX")
    return bucket, key


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
    return boto3.client("s3", config=cfg)


def classify_s3_error(exc: BaseException, what: str) -> Exception:
    """Map a botocore exception to a systemic error with a fix. Never includes credential values."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return CredentialsError(
            f"no AWS credentials found while {what}",
            hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or attach a role",
        )
    if isinstance(exc, EndpointConnectionError):
        return StorageError(
            f"cannot reach the S3 endpoint while {what}: {exc}",
            hint="check AWS_ENDPOINT_URL and the network; the run committed nothing",
        )
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchBucket", "404", "NotFound"):
            return InputNotFoundError(
                f"bucket not found while {what}", hint="check the bucket name in the URI"
            )
        if code in _CRED_CODES or code == "403":
            return CredentialsError(
                f"S3 rejected the credentials while {what} ({code})",
                hint="check the access key and secret (or role) for this endpoint",
            )
        return StorageError(
            f"S3 error {code} while {what}", hint="see the storage logs; nothing was committed"
        )
    return StorageError(f"storage failure while {what}: {type(exc).__name__}: {exc}")


def list_inputs(source: str, *, extensions: Iterable[str] | None = None) -> Iterator[FileRef]:
    """Yield the files under `source` (a folder, an s3:// prefix, a manifest, or one file), sorted by uri.

    Raises InputNotFoundError when the source does not exist, CredentialsError when S3 refuses us.
    """
    exts = frozenset(e.lower() for e in (extensions or DEFAULT_EXTENSIONS))
    if source.lower().endswith(MANIFEST_SUFFIXES):
        yield from list_manifest(source)
    elif is_s3(source):
        yield from list_s3(source, exts)
    else:
        yield from list_local(source, exts)


def _local_etag(st: os.stat_result) -> str:
    """A cheap content identity for local files: size and modification time (ns), hashed."""
    return hashlib.sha1(f"{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]


def list_local(source: str, exts: frozenset[str]) -> Iterator[FileRef]:
    """Walk a local folder recursively. Symlinked folders are followed once (loops are cut)."""
    root = Path(source).expanduser()
    if root.is_file():
        st = root.stat()
        yield FileRef(str(root.resolve()), st.st_size, _local_etag(st))
        return
    if not root.is_dir():
        raise InputNotFoundError(f"input folder not found: {source}", hint="check the path")
    seen_dirs: set[tuple[int, int]] = set()
    paths: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen_dirs:
            log.warning("skipping %s: symlink loop (already visited)", dirpath)
            dirnames[:] = []
            continue
        seen_dirs.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and Path(name).suffix.lower() in exts:
                paths.append(Path(dirpath) / name)
    for p in sorted(paths):
        try:
            st = p.stat()
        except OSError:
            yield FileRef(str(p.absolute()))  # a dangling link: scored as a READ_FAILED row
            continue
        yield FileRef(str(p.absolute()), st.st_size, _local_etag(st))


def list_s3(source: str, exts: frozenset[str]) -> Iterator[FileRef]:
    """List an s3:// prefix page by page (ListObjectsV2), keeping ETag and size."""
    from botocore.exceptions import BotoCoreError, ClientError

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
    except (ClientError, BotoCoreError) as exc:
        raise classify_s3_error(exc, f"listing s3://{bucket}/{prefix}") from None


def check_s3_access(uri: str) -> None:
    """Fail fast (before scoring) when the bucket of `uri` is missing or the credentials are wrong."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _ = split_s3(uri)
    try:
        s3_client().head_bucket(Bucket=bucket)
    except (ClientError, BotoCoreError) as exc:
        raise classify_s3_error(exc, f"opening bucket {bucket!r}") from None


def list_manifest(source: str) -> Iterator[FileRef]:
    """Read a manifest (CSV or Parquet) with a `uri` column; other columns are carried as `extra`.

    Optional `size` and `etag` columns are used; otherwise they are filled from storage when scoring.
    """
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    data = read_bytes(source) if is_s3(source) else None
    if data is None and not Path(source).is_file():
        raise InputNotFoundError(f"manifest not found: {source}", hint="check the path")
    import io

    src: Any = io.BytesIO(data) if data is not None else source
    try:
        if source.lower().endswith(".csv"):
            opts = pacsv.ConvertOptions(strings_can_be_null=True, column_types=None)
            table = pacsv.read_csv(src, convert_options=opts)
        else:
            table = pq.read_table(src)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a config problem
        raise ConfigError(f"cannot read manifest {source}: {exc}") from None
    if "uri" not in table.column_names:
        raise ConfigError(
            f"manifest {source} has no 'uri' column (columns: {table.column_names})",
            hint="add a header row with a 'uri' column",
        )
    base = Path(source).parent if not is_s3(source) else None
    for row in table.to_pylist():
        uri = row.pop("uri")
        if uri is None or str(uri).strip() == "":
            continue
        uri = str(uri).strip()
        if not is_s3(uri) and not uri.startswith("/") and base is not None:
            uri = str((base / uri).absolute())  # relative paths are relative to the manifest
        size = row.pop("size", None)
        etag = row.pop("etag", None)
        extra = {k: str(v) for k, v in row.items() if v is not None}
        yield FileRef(uri, int(size) if size is not None else None, str(etag) if etag else None, extra)


def read_bytes(uri: str, *, max_bytes: int | None = None) -> bytes:
    """Fetch a file's bytes (local path or s3://). Raises OSError-family or botocore errors."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        obj = s3_client().get_object(Bucket=bucket, Key=key)
        body = obj["Body"]
        try:
            return body.read() if max_bytes is None else body.read(max_bytes + 1)
        finally:
            body.close()
    with open(local_path(uri), "rb") as fh:
        return fh.read() if max_bytes is None else fh.read(max_bytes + 1)


def local_path(uri: str) -> str:
    """The file system path of a local uri (a plain path, or `file://` with %-escapes)."""
    return unquote(uri[len("file://") :]) if uri.startswith("file://") else uri


def stat_uri(uri: str) -> tuple[int, str]:
    """Size and etag of one file (for manifests that did not carry them)."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        head = s3_client().head_object(Bucket=bucket, Key=key)
        return int(head["ContentLength"]), str(head["ETag"]).strip('"')
    st = os.stat(uri)
    return st.st_size, _local_etag(st)
