"""How a scorer gets at a file: its local path (read by the decoder child itself) or its bytes.

The storage layer (`aei_batch.io.storage`) owns schemes and error classification; this module only adds the
run's limits (`--max-file-mb`) and the listing's size check.
"""

from __future__ import annotations

from typing import Any

from aei_batch.errors import ErrorCode, FileError
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
    return storage.as_local_path(uri)


def fetch(ref: dict[str, Any], ctx: RunContext) -> bytes:
    """A file's bytes, at most --max-file-mb; per-file problems raise FileError, systemic ones AeiError
    (classified by aei_batch.io.storage)."""
    check_listed_size(ref, ctx)
    etag = ref.get("etag") if storage.as_local_path(ref["uri"]) is None else None
    return storage.read_bytes(ref["uri"], max_bytes=ctx.max_file_bytes, etag=etag)
