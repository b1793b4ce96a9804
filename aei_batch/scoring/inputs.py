"""How a scorer gets at a file: its local path (read by the decoder child itself) or its bytes.

The storage layer (`aei_batch.io.storage`) owns schemes and error classification; this module only adds the
run's limits (`--max-file-mb`) and the listing's size check.
"""

from __future__ import annotations

from typing import Any

from aei_batch.errors import ErrorCode, FileError, StorageError
from aei_batch.io import storage
from aei_batch.scoring.rows import RunContext


def check_listed_size(ref: dict[str, Any], ctx: RunContext) -> None:
    """FILE_TOO_LARGE before anything is read, when the listing's size is over --max-file-mb."""
    size, limit = ref.get("size"), ctx.max_file_bytes
    if limit is not None and size is not None and size > limit:
        raise FileError(
            ErrorCode.FILE_TOO_LARGE, f"file is {size} bytes, over the limit of {limit} (--max-file-mb)"
        )


def local_path(uri: str) -> str | None:
    """A path this machine's processes can open, or None for a remote object."""
    return None if storage.is_s3(uri) else storage.local_path(uri)  # TODO(storage layer): as_local_path


_SYSTEMIC_S3 = ("EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError", "ConnectTimeoutError")


def fetch(ref: dict[str, Any], ctx: RunContext) -> bytes:
    """A file's bytes, at most --max-file-mb; per-file problems raise FileError, systemic ones AeiError."""
    check_listed_size(ref, ctx)
    limit = ctx.max_file_bytes
    path = local_path(ref["uri"])
    if path is not None:
        from aei_batch.features.clip import read_local

        return read_local(path, limit)
    try:
        data = storage.read_bytes(ref["uri"], max_bytes=limit)
    except Exception as exc:  # noqa: BLE001 - classified below
        name = type(exc).__name__
        if name in _SYSTEMIC_S3:
            raise StorageError(
                f"storage unreachable while reading files ({name}, after AEI_S3_MAX_ATTEMPTS retries)",
                hint="check AWS_ENDPOINT_URL and the network; nothing was committed: rerun when it is back",
            ) from None
        raise FileError(ErrorCode.READ_FAILED, f"cannot read the file: {name}: {str(exc)[:200]}") from None
    if limit is not None and len(data) > limit:
        raise FileError(ErrorCode.FILE_TOO_LARGE, f"file is over the limit of {limit} bytes (--max-file-mb)")
    return data
