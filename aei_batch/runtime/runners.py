"""Where the stages run: in-process (`local`), a process pool on this machine (`pool`) or Ray (`ray`)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from aei_batch.runtime.adapter import StageSpec, WorkerAdapter

RUNNERS = ("auto", "ray", "pool", "local")
#: `--runner auto` scores inputs this small in-process: starting even a process pool costs a few seconds of
#: imports per worker (bench/bench_small.py). Override with AEI_AUTO_LOCAL_MAX_FILES.
AUTO_LOCAL_MAX_FILES = 200
#: ... as long as they hold no more than this many bytes (long recordings and videos get all the cores).
AUTO_LOCAL_MAX_BYTES = 64 << 20
#: Without a cluster, `auto` runs inputs under this many files (and AUTO_POOL_MAX_BYTES) in the process pool:
#: for them an embedded Ray's own start and stop (3.6 s more than the pool on two cores) and its per-batch
#: overhead are a large share of the run (docs/PERFORMANCE.md). Bigger inputs get an embedded local Ray,
#: the same engine as a cluster. AEI_AUTO_POOL_MAX_FILES overrides the count (0: embedded Ray for all
#: inputs that are not small).
AUTO_POOL_MAX_FILES = 10_000
AUTO_POOL_MAX_BYTES = 2 << 30
_UNKNOWN_SIZE = 1 << 20  # a file of unknown size (manifest without sizes) counts as 1 MiB
#: Automatic batch size (`--batch-size` not given): at least this many files per batch ...
AUTO_BATCH_MIN = 16
#: ... growing with the number of files up to this many, as long as they are small on average.
AUTO_BATCH_MAX = 64
AUTO_BATCH_SMALL_FILE = 4 << 20


def auto_batch_size(sizes: Sequence[int | None]) -> int:
    """Files per batch when `--batch-size` is not given.

    Each batch is one task for a worker, and a task has a fixed cost (Ray: scheduling, its records in the
    driver; both runners: pickling, the output table). For thousands of short files that cost shows
    (bench/bench_scale.py: 20,000 files of 0.5 s scored 23% faster with Ray in batches of 64 than of 16,
    and the Ray driver's memory grew less), so batches grow to n / 64 files (at least 64 batches: every
    worker of a mid-sized cluster still gets work), between 16 and 64. Files over 4 MiB on average (long
    recordings, video) keep batches of 16: their outputs (segment rows, frames) are big and each file
    takes long enough on its own."""
    known = [s for s in sizes if s is not None]
    if known and sum(known) / len(known) > AUTO_BATCH_SMALL_FILE:
        return AUTO_BATCH_MIN
    return max(AUTO_BATCH_MIN, min(AUTO_BATCH_MAX, len(sizes) // 64))


def resolve_runner(runner: str, sizes: Sequence[int | None]) -> str:
    """The runner `auto` stands for, given the sizes of the input files.

    * `ray` whenever there is a cluster: RAY_ADDRESS names one, or Ray is already up in this process;
    * `local` (in-process) for small inputs: fewer than AUTO_LOCAL_MAX_FILES files and at most
      AUTO_LOCAL_MAX_BYTES bytes, where starting even worker processes would cost more than the work;
    * `pool` (one process per CPU of this machine) for mid-sized inputs: fewer than AUTO_POOL_MAX_FILES
      files and at most AUTO_POOL_MAX_BYTES bytes, where an embedded Ray's start, stop and per-batch
      overhead would be a large share of the run (docs/PERFORMANCE.md). It gives the same guarantees:
      rows only count once they are back, the batches of a worker that died are retried;
    * `ray` otherwise: an embedded local Ray.

    Other values are returned as they are.
    """
    if runner != "auto":
        return runner
    ray = sys.modules.get("ray")
    if os.environ.get("RAY_ADDRESS") or (ray is not None and ray.is_initialized()):
        return "ray"
    n, total = len(sizes), sum(_UNKNOWN_SIZE if s is None else s for s in sizes)
    local_max = int(os.environ.get("AEI_AUTO_LOCAL_MAX_FILES", AUTO_LOCAL_MAX_FILES))
    pool_max = int(os.environ.get("AEI_AUTO_POOL_MAX_FILES", AUTO_POOL_MAX_FILES))
    if n < local_max and total <= AUTO_LOCAL_MAX_BYTES:
        return "local"
    if n < pool_max and total <= AUTO_POOL_MAX_BYTES:
        return "pool"
    return "ray"


class Runtime:
    """Where one run's stages execute: `local` (this process), `pool` (worker processes of this machine) or
    `ray` (Ray actors on an embedded Ray or a cluster). It owns its workers: `start_early()` starts them
    while the driver is still loading and listing, `run()` streams a stage over a table through the shared
    worker adapter (and, for the pool and Ray, the shared dispatch loop), `close()` stops them. Use it as a
    context manager; an exception closes it at once (`abort`), without waiting for batches still running."""

    def __init__(self, runner: str, workers: int | None = None) -> None:
        if runner not in ("local", "pool", "ray"):
            from aei_batch.errors import ConfigError

            raise ConfigError(f"unknown runner {runner!r}", hint="use --runner auto, ray, pool or local")
        self.runner = runner
        self.workers = workers
        self._backend: Any = None

    def start_early(self, *, warm_modules: tuple[str, ...] = (), warm_call: Any = None) -> None:
        """Start the workers now, in the background. Ray: as soon as possible (its start takes seconds). The
        pool: once the driver has loaded the model, so that forked workers inherit its libraries."""
        if self._backend is not None or self.runner == "local":
            return
        if self.runner == "ray":
            from aei_batch.runtime.ray_backend import RayBackend

            self._backend = RayBackend(self.workers, warm_modules)
            self._backend.start_early()
        else:
            from aei_batch.runtime.pool import PoolBackend, default_workers

            self._backend = PoolBackend(self.workers or default_workers(), warm_modules, warm_call)

    def run(self, spec: StageSpec, table: pa.Table, *, batch_size: int) -> Iterator[Any]:
        """Run `spec`'s stage over `table` in batches; yield outputs as they complete (pool and Ray: not in
        input order)."""
        n_batches = -(-table.num_rows // batch_size)
        if n_batches == 0:
            return
        if self.runner == "local":
            adapter = WorkerAdapter(spec)
            try:
                for start in range(0, table.num_rows, batch_size):
                    yield adapter.run(table.slice(start, batch_size))
            finally:
                adapter.teardown()
            return
        from aei_batch.runtime.dispatch import dispatch

        if self.runner == "pool":
            from aei_batch.runtime.pool import PoolBackend, default_workers

            if self._backend is None:
                size = min(self.workers or default_workers(), n_batches)
                self._backend = PoolBackend(size)
            self._backend.spec = spec
            retries = int(os.environ.get("AEI_POOL_MAX_RETRIES", "3"))
        else:
            from aei_batch.runtime.ray_backend import RayBackend

            if self._backend is None:
                self._backend = RayBackend(self.workers)
            self._backend.bind(spec, n_batches)
            retries = 0  # Ray retries a dead actor's tasks itself (AEI_RAY_MAX_TASK_RETRIES)
        yield from dispatch(self._backend, table, batch_size=batch_size, max_retries=retries)

    def close(self, *, abort: bool = False) -> None:
        backend, self._backend = self._backend, None
        if backend is not None:
            backend.close(abort=abort)

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.close(abort=exc_type is not None)


def run_stage(
    stage_cls: type,
    stage_kwargs: dict[str, Any],
    table: pa.Table,
    *,
    runner: str = "auto",
    batch_size: int = 16,
    workers: int | None = None,
) -> Iterator[Any]:
    """Run `stage_cls(**stage_kwargs)` over `table` on a runner of its own (training, evaluation)."""
    sizes = table.column("size").to_pylist() if "size" in table.column_names else [None] * table.num_rows
    with Runtime(resolve_runner(runner, sizes), workers) as rt:
        yield from rt.run(StageSpec(stage_cls, stage_kwargs), table, batch_size=batch_size)
