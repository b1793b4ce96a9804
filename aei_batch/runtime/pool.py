"""The process-pool runner: the stage in N worker processes of this machine, no Ray.

For one machine it does what the Ray runner does (each worker builds the stage once, batches stream
back to the driver, which writes them) at a fraction of the start-up cost: no cluster services to
start (bench/bench_small.py, docs/PERFORMANCE.md). Workers are forks of the driver when that is safe
(`aei_batch.runtime.watchdog.fork_is_safe`: Linux, no other thread in the driver): they start in milliseconds
with the driver's modules already imported, and the driver starts them after loading the model, so
the model's libraries are imported once for all. Otherwise (another thread in the driver, not Linux)
they are spawned interpreters that import the stage's modules themselves. Either way the driver starts
them early (`prestart_pool`), so that their warm-up (the feature extractor's first-call compilation)
overlaps the driver's listing and table opening; each worker builds the stage itself on its first
batch, and its decoder child is a fork of the warm worker. Batches go out as they are needed, at most
two per worker in flight, so memory stays flat whatever the number of files. A worker that dies (it
should not: decoding runs in a watchdog child process; but the kernel's OOM killer or an operator may
kill it) costs a new pool and the batches in flight are retried, at most AEI_POOL_MAX_RETRIES times
each, like the Ray runner's task retries; rows only count once they are back, so none is lost or
duplicated.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import pyarrow as pa

from aei_batch.runtime.adapter import StageSpec, WorkerAdapter
from aei_batch.runtime.dispatch import WorkerLost
from aei_batch.runtime.watchdog import die_with_parent, fork_is_safe

log = logging.getLogger(__name__)

#: Thread pools of the numeric libraries, one thread each: N workers on N cores already fill the machine.
_ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
#: This worker process's adapter (one stage at a time; rebuilt when the spec changes).
_WORKER: tuple[StageSpec, WorkerAdapter] | None = None


def _worker_init() -> None:
    """A worker's initializer: die with the driver (a killed driver leaves no worker behind), and numeric
    thread pools of one thread (N workers fill N cores)."""
    die_with_parent()
    os.environ.update(dict.fromkeys(_ONE_THREAD, "1"))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - installed with scikit-learn
        return
    threadpool_limits(1)


#: A worker's warm-up call: (module, function, arguments), e.g. the feature extractor's first call.
WarmCall = tuple[str, str, tuple[Any, ...]]


def _warm_worker(warm_modules: tuple[str, ...], warm_call: WarmCall | None) -> None:
    """Worker start-up: import what the stage needs and make its warm-up call (lazy imports, numba
    compilation), so that the decoder children forked from this worker start warm."""
    import importlib

    for name in warm_modules:
        importlib.import_module(name)
    if warm_call is not None:
        module, fn, args = warm_call
        getattr(importlib.import_module(module), fn)(*args)


def _run_batch(spec: StageSpec, batch: pa.Table) -> Any:
    """Run one batch through this worker's adapter, built on the worker's first batch of `spec`."""
    global _WORKER
    if _WORKER is None or _WORKER[0] != spec:
        if _WORKER is not None:
            _WORKER[1].teardown()
        _WORKER = (spec, WorkerAdapter(spec))
    return _WORKER[1].run(batch)


def default_workers() -> int:
    """The CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _start(size: int, warm_modules: tuple[str, ...], warm_call: WarmCall | None) -> ProcessPoolExecutor:
    """Start `size` workers now (forked, or spawned when a fork is not safe), warming up."""
    import multiprocessing

    if fork_is_safe():  # the workers are started before the executor's own threads (Python 3.11, fork)
        import gc

        # The driver's objects so far (imported modules, the model) go to the permanent generation while the
        # workers are forked (all of them at the first submit, with the fork start method): the workers'
        # garbage collections then neither walk them nor write to their pages (which would copy them).
        gc.freeze()
        try:
            fork = multiprocessing.get_context("fork")
            pool = ProcessPoolExecutor(size, mp_context=fork, initializer=_worker_init)
            for _ in range(size):
                pool.submit(_warm_worker, warm_modules, warm_call)
        finally:
            gc.unfreeze()  # the driver itself collects as before
        return pool
    saved = {k: os.environ.get(k) for k in _ONE_THREAD}
    os.environ.update(dict.fromkeys(_ONE_THREAD, "1"))  # inherited by the workers spawned below
    # `spawn` re-runs the driver's main script in every worker unless it is guarded by
    # `if __name__ == "__main__":`. The workers only need aei_batch's modules, so the main script's path is
    # hidden while they start: a caller's unguarded script works as it does with the other runners.
    main = sys.modules.get("__main__")
    hidden = None
    if main is not None and getattr(getattr(main, "__spec__", None), "name", None) is None:
        hidden = main.__dict__.pop("__file__", None)
    try:
        spawn = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(size, mp_context=spawn, initializer=_worker_init)
        for _ in range(size):
            pool.submit(_warm_worker, warm_modules, warm_call)
    finally:
        if hidden is not None and main is not None:
            main.__file__ = hidden
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return pool


class PoolBackend:
    """N worker processes of this machine (`Backend` for the dispatch loop).

    A worker that dies (SIGKILL, the kernel's OOM killer, a crash in native code outside the decoder child)
    breaks the whole executor: every batch still in flight then fails with WorkerLost, the dispatch loop
    retries them, and `recover()` starts new workers. Handles carry the executor's generation, so the
    failures of an executor already replaced do not replace the new one again."""

    name = "pool"

    def __init__(
        self, size: int, warm_modules: tuple[str, ...] = (), warm_call: WarmCall | None = None
    ) -> None:
        self.size = max(1, size)
        self._warm = (warm_modules, warm_call)
        self._pool: ProcessPoolExecutor | None = _start(self.size, *self._warm)
        self._gen = 0
        self._broken = False
        self.spec: StageSpec | None = None

    def free_slots(self, in_flight: int) -> int:
        return max(0, 2 * self.size - in_flight)

    def submit(self, batch: pa.Table) -> tuple[int, Future[Any]]:
        assert self._pool is not None and self.spec is not None
        try:
            return self._gen, self._pool.submit(_run_batch, self.spec, batch)
        except BrokenProcessPool:  # a worker died since the last wait: this batch never ran
            self._broken = True
            raise WorkerLost() from None

    def wait(self, handles: list[tuple[int, Future[Any]]]) -> list[tuple[int, Future[Any]]]:
        if not handles:
            return []
        done, _ = wait([f for _, f in handles], return_when=FIRST_COMPLETED)
        return [h for h in handles if h[1] in done]

    def result(self, handle: tuple[int, Future[Any]]) -> Any:
        gen, future = handle
        try:
            return future.result()
        except BrokenProcessPool:
            if gen == self._gen:
                self._broken = True
            raise WorkerLost() from None

    def recover(self) -> None:
        if not self._broken:
            return
        log.warning(
            "a pool worker died (killed, out of memory, or a crash in native code): starting new workers and "
            "retrying the batches in flight"
        )
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = _start(self.size, *self._warm)
        self._gen += 1
        self._broken = False

    def close(self, *, abort: bool = False) -> None:
        """Stop the workers: after the last batch, or at once (`abort`: a failed or interrupted run)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if abort:  # SIGTERM, Ctrl-C, an error: do not wait for batches still running
            for proc in list(getattr(pool, "_processes", {}).values()):
                with contextlib.suppress(Exception):
                    proc.kill()
        pool.shutdown(wait=True, cancel_futures=True)
