"""The Ray runner: Ray Data over the input references, the stage in an actor pool.

Each actor constructs the stage once (model loaded once per worker) and is fed batches; reading,
decoding, features and the model run fused inside the actor, so waveforms never cross the object
store. Outputs stream back to the driver, which writes them to the staging file of the sink.
Works with embedded local Ray (default) or any cluster via `RAY_ADDRESS` / `--address`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from aei_batch.errors import AeiError

log = logging.getLogger(__name__)


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to `address` / RAY_ADDRESS, or start an embedded local Ray."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False, "logging_level": logging.WARNING}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, **kwargs)


def _configure_data_context() -> None:
    from ray.data import DataContext

    logging.getLogger("ray.data").setLevel(logging.WARNING)  # keep the CLI's output readable
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False  # the CLI draws its own bar over files
    ctx.enable_operator_progress_bars = False
    ctx.print_on_execution_start = False


def _unwrap(exc: BaseException) -> BaseException:
    """Find an AeiError raised inside a Ray task/actor, so systemic errors keep their exit code."""
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 10:
        if isinstance(cur, AeiError):
            return cur
        cause = getattr(cur, "cause", None)
        cur = cause if isinstance(cause, BaseException) else cur.__cause__
        seen += 1
    return exc


def _blocks(table: pa.Table, batch_size: int, parallelism: int) -> list[pa.Table]:
    """Split the inputs into blocks: enough for all actors to start, none bigger than 16 batches."""
    n = table.num_rows
    per_block = max(batch_size, min(16 * batch_size, -(-n // max(1, 4 * parallelism))))
    return [table.slice(i, per_block) for i in range(0, n, per_block)]


def run_ray(
    stage_cls: type, stage_kwargs: dict[str, Any], table: pa.Table, *, batch_size: int, workers: int | None = None
) -> Iterator[pa.Table]:
    import ray
    import ray.data

    ensure_ray()
    _configure_data_context()
    cpus = int(ray.cluster_resources().get("CPU", 1))
    size = max(1, min(workers or cpus, cpus))
    ds = ray.data.from_arrow(_blocks(table, batch_size, size))
    ds = ds.map_batches(
        stage_cls,
        fn_constructor_kwargs=stage_kwargs,
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=size),
        num_cpus=1,
        batch_size=batch_size,
        batch_format="pyarrow",
        zero_copy_batch=True,
    )
    try:
        for out in ds.iter_batches(batch_format="pyarrow", batch_size=None, prefetch_batches=1):
            yield out
    except Exception as exc:
        inner = _unwrap(exc)
        if inner is not exc:
            raise inner from None
        raise
