"""One dispatch loop for every runner that fans out: it moves batches, nothing else.

A `Backend` (the process pool, Ray actors) knows how to start workers, hand a batch to one, wait for results
and replace workers that died; the loop owns the order of work, the bound on batches in flight (so the
driver's memory stays flat whatever the number of files), and retries: a batch whose worker was lost is
retried at most `max_retries` times, and its rows only count once its result is back, so a retry can neither
lose nor duplicate rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import pyarrow as pa

from aei_batch.errors import JobFailedError


class WorkerLost(Exception):
    """The worker holding a batch died before returning it; the batch can be retried elsewhere."""


class Backend(Protocol):
    name: str

    def free_slots(self, in_flight: int) -> int:
        """How many more batches may be handed out now (0 while workers are still starting)."""

    def submit(self, batch: pa.Table) -> Any:
        """Hand `batch` to a worker; return a handle. May raise WorkerLost (the batch never ran)."""

    def wait(self, handles: list[Any]) -> list[Any]:
        """Block until some handles are done; return them ([] when only worker start-ups progressed)."""

    def result(self, handle: Any) -> Any:
        """The batch's output; WorkerLost when its worker died (systemic errors propagate)."""

    def recover(self) -> None:
        """Replace workers after a WorkerLost (a no-op when nothing is broken)."""

    def close(self) -> None: ...


def compact(table: pa.Table) -> pa.Table:
    """A copy of `table` holding only its own rows. A slice shares its parent's buffers, and pickling or
    putting it in Ray's object store ships all of them: a 16-row slice of a 20,000-row input table weighed
    as much as the whole table, for every batch (bench/bench_scale.py)."""
    return pa.Table.from_pylist(table.to_pylist(), schema=table.schema)


def dispatch(backend: Backend, table: pa.Table, *, batch_size: int, max_retries: int) -> Iterator[Any]:
    """Run `table` in batches on `backend`; yield outputs as they complete (not in input order)."""
    retry: list[tuple[pa.Table, int]] = []  # (batch, attempts so far)
    pending: dict[Any, tuple[pa.Table, int]] = {}
    next_row = 0

    def lost(batch: pa.Table, attempts: int) -> None:
        if attempts > max_retries:
            raise JobFailedError(
                f"a worker process of the {backend.name} runner died (killed, out of memory, or a crash in "
                f"native code) and a batch it held has failed {attempts} time(s), more than the "
                f"{max_retries} retries allowed",
                hint="check the machine's memory (the kernel log names processes its OOM killer ended); "
                "nothing was committed: rerun, or raise AEI_POOL_MAX_RETRIES / AEI_RAY_MAX_TASK_RETRIES",
            )
        retry.append((batch, attempts))

    while next_row < table.num_rows or retry or pending:
        broken = False
        for _ in range(backend.free_slots(len(pending))):
            if retry:
                batch, attempts = retry.pop()
            elif next_row < table.num_rows:
                batch, attempts = compact(table.slice(next_row, batch_size)), 0
                next_row += batch.num_rows
            else:
                break
            try:
                pending[backend.submit(batch)] = (batch, attempts)
            except WorkerLost:
                lost(batch, attempts + 1)
                broken = True
                break
        if not broken and pending:
            for handle in backend.wait(list(pending)):
                batch, attempts = pending.pop(handle)
                try:
                    out = backend.result(handle)
                except WorkerLost:
                    lost(batch, attempts + 1)
                    broken = True
                    continue
                yield out
        elif not broken and not pending and (retry or next_row < table.num_rows):
            backend.wait([])  # nothing in flight yet: let workers come up
        if broken:
            backend.recover()
