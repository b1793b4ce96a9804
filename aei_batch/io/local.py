"""Open and read local files safely, with nothing heavier than the standard library.

The decoder child (runtime/watchdog.py) reads local files through `read_local`, inside the per-file decode
clock: this module must stay cheap to import (no pyarrow, no boto3). `aei_batch.io.storage` builds on it.
A FIFO, device or socket fails at once (`NOT_REGULAR_FILE`): the path is stat'ed, opened non-blocking and
checked again, so nothing ever blocks on a FIFO or reads /dev/zero up to the size limit.
"""

from __future__ import annotations

import os
import stat

from aei_batch.errors import ErrorCode, FileError


def not_regular(mode: int) -> FileError | None:
    if stat.S_ISREG(mode):
        return None
    kind = (
        "a folder"
        if stat.S_ISDIR(mode)
        else "a FIFO (named pipe)"
        if stat.S_ISFIFO(mode)
        else "a character device"
        if stat.S_ISCHR(mode)
        else "a block device"
        if stat.S_ISBLK(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "not a regular file"
    )
    return FileError(ErrorCode.NOT_REGULAR_FILE, f"not a regular file: it is {kind} (never read)")


def too_large(limit: int, size: int | None = None) -> FileError:
    what = f"file is {size} bytes, over" if size is not None else "file is over"
    return FileError(ErrorCode.FILE_TOO_LARGE, f"{what} the limit of {limit} bytes (--max-file-mb)")


def open_regular(path: str, max_bytes: int | None) -> int:
    """An fd of a regular local file within `max_bytes`; FileError otherwise. Never blocks on a FIFO."""
    try:
        bad = not_regular(os.stat(path).st_mode)
        if bad is not None:
            raise bad
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        raise FileError(
            ErrorCode.READ_FAILED, f"cannot read the file: {type(exc).__name__}: {str(exc)[:200]}"
        ) from None
    try:
        st = os.fstat(fd)  # the file may have been swapped between stat and open
        bad = not_regular(st.st_mode)
        if bad is not None:
            raise bad
        if max_bytes is not None and st.st_size > max_bytes:
            raise too_large(max_bytes, st.st_size)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_local(path: str, max_bytes: int | None) -> bytes:
    """A regular local file's bytes, at most `max_bytes`; FileError (READ_FAILED, FILE_TOO_LARGE,
    NOT_REGULAR_FILE) otherwise."""
    fd = open_regular(path, max_bytes)
    try:
        with os.fdopen(fd, "rb") as fh:
            data = fh.read() if max_bytes is None else fh.read(max_bytes + 1)
    except OSError as exc:
        raise FileError(
            ErrorCode.READ_FAILED, f"cannot read the file: {type(exc).__name__}: {str(exc)[:200]}"
        ) from None
    if max_bytes is not None and len(data) > max_bytes:
        raise too_large(max_bytes)
    return data
