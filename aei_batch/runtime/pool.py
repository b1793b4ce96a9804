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

import os
import sys
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import pyarrow as pa

#: Thread pools of the numeric libraries, one thread each: N workers on N cores already fill the machine.
_ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
_STAGE: tuple[Any, Any] | None = None  # (key, stage) of this worker process
_prestarted: tuple[int, ProcessPoolExecutor] | None = None  # (size, pool) started by prestart_pool()


def _one_thread() -> None:
    """A forked worker's initializer: numeric thread pools of one thread (N workers fill N cores)."""
    os.environ.update(dict.fromkeys(_ONE_THREAD, "1"))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - installed with scikit-learn
        return
    threadpool_limits(1)


def _warm_worker(feature_set: str) -> None:
    """Worker start-up: import what scoring needs and run the feature extractor once (lazy imports,
    numba compilation), so that the decoder children forked from this worker start warm."""
    import aei_batch.models.loader  # noqa: F401 - imports the model libraries
    import aei_batch.scoring.stage  # noqa: F401
    from aei_batch.features.clip import warm_up_features

    warm_up_features(feature_set)


def _run_batch(stage_cls: type, stage_kwargs: dict[str, Any], batch: pa.Table) -> pa.Table:
    """Run one batch, building the stage on this worker's first batch (and again only if it changes)."""
    global _STAGE
    key = (stage_cls, repr(stage_kwargs))
    if _STAGE is None or _STAGE[0] != key:
        _STAGE = (key, stage_cls(**stage_kwargs))
    return _STAGE[1](batch)


def default_workers() -> int:
    """The CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _start(size: int, feature_set: str = "seed_mfcc157") -> ProcessPoolExecutor:
    """Start `size` workers now (forked, or spawned when a fork is not safe), warming up."""
    import multiprocessing

    from aei_batch.runtime.watchdog import fork_is_safe

    if fork_is_safe():  # the workers are started before the executor's own threads (Python 3.11, fork)
        import gc

        # The driver's objects so far (imported modules, the model) go to the permanent generation while the
        # workers are forked (all of them at the first submit, with the fork start method): the workers'
        # garbage collections then neither walk them nor write to their pages (which would copy them).
        gc.freeze()
        try:
            fork = multiprocessing.get_context("fork")
            pool = ProcessPoolExecutor(size, mp_context=fork, initializer=_one_thread)
            for _ in range(size):
                pool.submit(_warm_worker, feature_set)
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
        pool = ProcessPoolExecutor(size, mp_context=multiprocessing.get_context("spawn"))
        for _ in range(size):
            pool.submit(_warm_worker, feature_set)
    finally:
        if hidden is not None and main is not None:
            main.__file__ = hidden
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return pool


def prestart_pool(workers: int | None = None, feature_set: str = "seed_mfcc157") -> None:
    """Start the workers now, in the background; the next `run_pool` with as many workers uses them."""
    global _prestarted
    if _prestarted is None:
        size = max(1, workers or default_workers())
        _prestarted = (size, _start(size, feature_set))


def shutdown_prestarted() -> None:
    """Stop workers started by `prestart_pool` and not used (an error before scoring)."""
    global _prestarted
    if _prestarted is not None:
        _prestarted[1].shutdown(wait=True, cancel_futures=True)
        _prestarted = None


def run_pool(
    stage_cls: type,
    stage_kwargs: dict[str, Any],
    table: pa.Table,
    *,
    batch_size: int,
    workers: int | None = None,
) -> Iterator[pa.Table]:
    """Run the stage over `table` in `workers` processes (default: this machine's CPUs); yield outputs as they
    complete (not in input order, like the Ray runner).

    A worker that dies (SIGKILL, the kernel's OOM killer, a crash in native code outside the decoder child)
    breaks the whole pool: every batch still in flight is then retried on a new pool, at most
    AEI_POOL_MAX_RETRIES times per batch (default 3, like the Ray runner's task retries), after which the
    run fails. A batch's rows are only yielded once its result is back, so a retry cannot duplicate rows."""
    global _prestarted
    from aei_batch.runtime.runners import compact

    size = max(1, workers or default_workers())
    max_retries = int(os.environ.get("AEI_POOL_MAX_RETRIES", "3"))
    if _prestarted is not None and _prestarted[0] == size:
        pool, _prestarted = _prestarted[1], None
    else:
        shutdown_prestarted()
        pool = _start(max(1, min(size, -(-table.num_rows // batch_size))))
    retry: list[tuple[pa.Table, int]] = []  # (batch, attempts so far) to run again on a new pool
    pending: dict[Future[pa.Table], tuple[pa.Table, int]] = {}
    next_row = 0
    try:
        while next_row < table.num_rows or retry or pending:
            while len(pending) < 2 * size and (retry or next_row < table.num_rows):
                if retry:
                    batch, attempts = retry.pop()
                else:  # a copy, not the slice: pickling a slice ships the whole table
                    batch, attempts = compact(table.slice(next_row, batch_size)), 0
                    next_row += batch.num_rows
                try:
                    pending[pool.submit(_run_batch, stage_cls, stage_kwargs, batch)] = (batch, attempts)
                except BrokenProcessPool:  # a worker died since the last wait: this batch never ran
                    retry.append((batch, attempts))
                    pool = _restart_broken(pool, pending, retry, max_retries, size)
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            broken = False
            for f in done:
                batch, attempts = pending.pop(f)
                try:
                    out = f.result()
                except BrokenProcessPool:
                    broken = True
                    retry.append((batch, attempts + 1))
                    continue
                yield out
            if broken:
                pool = _restart_broken(pool, pending, retry, max_retries, size)
    finally:
        for f in pending:
            f.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _restart_broken(
    pool: ProcessPoolExecutor,
    pending: dict[Future[pa.Table], tuple[pa.Table, int]],
    retry: list[tuple[pa.Table, int]],
    max_retries: int,
    size: int,
) -> ProcessPoolExecutor:
    """A worker died: collect what the broken pool still holds (results that made it back are kept for
    yielding, the rest goes to `retry`), fail the run if a batch ran out of retries, else start a new pool."""
    import logging

    from aei_batch.errors import JobFailedError

    wait(pending)  # a broken pool fails every batch it still holds at once; results already back stay
    for f in [f for f in pending if isinstance(f.exception(), BrokenProcessPool)]:
        batch, attempts = pending.pop(f)
        retry.append((batch, attempts + 1))
    pool.shutdown(wait=True)
    worst = max(a for _, a in retry)
    if worst > max_retries:
        raise JobFailedError(
            "a worker process of the pool runner died (killed, out of memory, or a crash in native code) "
            f"and a batch it held has failed {worst} time(s), more than AEI_POOL_MAX_RETRIES={max_retries}",
            hint="check the machine's memory (the kernel log names processes its OOM killer ended); "
            "nothing was committed: rerun, or raise AEI_POOL_MAX_RETRIES if the deaths were transient",
        )
    logging.getLogger(__name__).warning(
        "a pool worker died (killed, out of memory, or a crash in native code): starting new workers and "
        "retrying the %d batches in flight (attempt %d of %d)",
        len(retry),
        worst,
        max_retries,
    )
    return _start(size)
