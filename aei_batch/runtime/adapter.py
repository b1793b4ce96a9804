"""The stage contract and the one adapter every runner uses to run a stage inside a worker.

A stage says *what* happens to a batch; a runner says *where* (this process, a pool process, a Ray actor).
Between them sits `WorkerAdapter`, the same object in every runner:

* it builds the stage from its `StageSpec` once per worker and calls `setup()` (heavy state: the model, the
  decoder child), `process_batch()` per batch, and `teardown()` when the worker is done;
* it checks the row-count invariant: a batch of N input files yields N files of output (a stage that would
  lose or invent a row raises, because a lost row is worse than a failed batch);
* `per_file()` is the per-file error policy all stages share: a file's `FileError` becomes data (a
  `FileFailure` the stage turns into its error row), an unexpected exception becomes an INTERNAL failure
  of that file only, and systemic errors (`AeiError`: storage down, bad credentials) fail the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

import pyarrow as pa

from aei_batch.errors import AeiError, ErrorCode, FileError

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@runtime_checkable
class Stage(Protocol):
    """What runs in a worker. The constructor only stores (picklable) arguments."""

    def setup(self) -> None:
        """Once per worker, before the first batch: load models, start helper processes."""

    def process_batch(self, batch: pa.Table) -> Any:
        """One batch of input rows -> an output covering every input file (see `output_files`)."""

    def teardown(self) -> None:
        """Once per worker, after the last batch: stop helper processes."""


@dataclass(frozen=True)
class StageSpec:
    """A stage class and its constructor arguments: what travels to the workers."""

    cls: type
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.cls.__name__

    def build(self) -> Any:
        return self.cls(**self.kwargs)


@dataclass(frozen=True)
class FileFailure:
    """A file that could not be processed: the stage writes it as an error row."""

    code: str
    message: str


def output_files(out: Any) -> int:
    """How many input files an output covers: a table's rows, or an object's `num_files`."""
    n = getattr(out, "num_files", None)
    return int(n) if n is not None else int(out.num_rows)


def per_file(
    items: Iterable[T], fn: Callable[[T], R], *, name: Callable[[T], str] = str
) -> list[R | FileFailure]:
    """Apply `fn` to each item; per-file failures become `FileFailure`s, systemic ones propagate."""
    out: list[R | FileFailure] = []
    for item in items:
        try:
            out.append(fn(item))
        except FileError as err:
            out.append(FileFailure(str(err.code), err.message))
        except AeiError:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug on one file must not lose the batch
            log.exception("unexpected error on %s", name(item))
            out.append(FileFailure(str(ErrorCode.INTERNAL), f"{type(exc).__name__}: {exc}"))
    return out


class WorkerAdapter:
    """Runs one stage in one worker: build + setup once, checked batches, teardown."""

    def __init__(self, spec: StageSpec) -> None:
        self.spec = spec
        self._stage: Any = None

    @property
    def stage(self) -> Any:
        if self._stage is None:
            stage = self.spec.build()
            stage.setup()
            self._stage = stage
        return self._stage

    def run(self, batch: pa.Table) -> Any:
        out = self.stage.process_batch(batch)
        n = output_files(out)
        if n != batch.num_rows:
            raise RuntimeError(f"stage {self.spec.name} returned {n} files for a batch of {batch.num_rows}")
        return out

    def teardown(self) -> None:
        if self._stage is not None:
            stage, self._stage = self._stage, None
            stage.teardown()
