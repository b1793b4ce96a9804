"""Error codes (per-file, stable, become data) and exit codes (per-run, systemic failures).

Per-file problems never stop a run: they become an error row with one of `ErrorCode` and a readable
message. Systemic problems (bad configuration, unreachable storage, unusable model) raise an
`AeiError` subclass before any scoring starts; the CLI turns it into a message and its exit code.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

from aei_batch.io.security import redact


class ErrorCode(StrEnum):
    """Stable codes for error rows. Documented in docs/ERRORS.md; never renamed."""

    READ_FAILED = "READ_FAILED"  # the bytes could not be fetched (missing, permission, transient I/O)
    EMPTY_FILE = "EMPTY_FILE"  # zero bytes
    FILE_TOO_LARGE = "FILE_TOO_LARGE"  # over --max-file-mb
    UNSUPPORTED_FORMAT = "UNSUPPORTED_FORMAT"  # extension not handled
    DECODE_FAILED = "DECODE_FAILED"  # no backend could decode the container/stream
    NO_AUDIO_STREAM = "NO_AUDIO_STREAM"  # a container without an audio track (and no usable video)
    NO_VIDEO_STREAM = "NO_VIDEO_STREAM"  # a video-only model got a file without a video track
    TOO_SHORT = "TOO_SHORT"  # shorter than the minimum analysable duration
    TOO_LONG = "TOO_LONG"  # longer than --max-duration-s
    INVALID_AUDIO = "INVALID_AUDIO"  # NaN/Inf samples or similar that cannot be featurised
    SILENT = "SILENT"  # every sample is (near) zero: nothing to read an emotion from
    DECODE_TIMEOUT = "DECODE_TIMEOUT"  # decoding exceeded the per-file timeout
    FEATURE_FAILED = "FEATURE_FAILED"  # feature extraction raised
    PREDICT_FAILED = "PREDICT_FAILED"  # the model raised on this file
    INTERNAL = "INTERNAL"  # an unexpected exception (a bug): reported, never silent
    NOT_REGULAR_FILE = "NOT_REGULAR_FILE"  # a FIFO, device, socket or folder where a file was expected
    OUTSIDE_ROOTS = "OUTSIDE_ROOTS"  # a manifest uri outside the allowed roots (--allow-root)
    BAD_FILE_NAME = "BAD_FILE_NAME"  # a file name that is not valid UTF-8 (shown escaped)
    UNSUPPORTED_SCHEME = "UNSUPPORTED_SCHEME"  # a manifest uri of a scheme we do not read (http://...)
    FILE_CHANGED = "FILE_CHANGED"  # the file changed while it was scored: its listed identity is stale


class ExitCode(IntEnum):
    """Process exit codes of the CLI. Documented in README and docs/ERRORS.md."""

    OK = 0
    UNEXPECTED = 1
    USAGE = 2  # typer/click usage errors
    ERROR_RATE = 3  # run finished and was committed, but the error share passed --max-error-rate
    CONFIG = 4  # invalid configuration value
    INPUT_NOT_FOUND = 5  # no such directory / bucket / manifest, or it lists no files
    CREDENTIALS = 6  # storage rejected the credentials
    MODEL = 7  # model directory missing, corrupt, or its feature hash does not match
    STORAGE = 8  # storage unreachable or failing after retries; nothing was committed
    JOB_FAILED = 9  # a submitted Ray job ended in failure


class AeiError(Exception):
    """A systemic error: the run cannot proceed. `exit_code` says how the CLI exits."""

    exit_code: ExitCode = ExitCode.UNEXPECTED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(redact(message))  # no credential ever reaches a message (io/security.py)
        self.hint = redact(hint) if hint else hint

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base}\n  fix: {self.hint}" if self.hint else base


class ConfigError(AeiError):
    exit_code = ExitCode.CONFIG


class InputNotFoundError(AeiError):
    exit_code = ExitCode.INPUT_NOT_FOUND


class CredentialsError(AeiError):
    exit_code = ExitCode.CREDENTIALS


class ModelError(AeiError):
    exit_code = ExitCode.MODEL


class StorageError(AeiError):
    exit_code = ExitCode.STORAGE


class JobFailedError(AeiError):
    exit_code = ExitCode.JOB_FAILED


class FileError(Exception):
    """A per-file failure with a stable code; caught by the stages and turned into an error row."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        message = redact(message)
        super().__init__(message)
        self.code = code
        self.message = message


class ClusterUnreachableError(AeiError):
    """The Ray cluster named by RAY_ADDRESS / --address does not answer (nothing was scored or committed)."""

    exit_code = ExitCode.STORAGE
