"""The Ray runner: Ray Data over the input references, the stage in an actor pool.

Each actor constructs the stage once (model loaded once per worker) and is fed batches; reading,
decoding, features and the model run fused inside the actor, so waveforms never cross the object
store. Outputs stream back to the driver, which writes them to the staging file of the sink.
Works with embedded local Ray (default) or any cluster via `RAY_ADDRESS` / `--address`.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from aei_batch.errors import AeiError

log = logging.getLogger(__name__)


_prestart: threading.Thread | None = None
_prestart_done = threading.Event()
_prestart_error: list[BaseException] = []


def prestart_ray() -> None:
    """Start (or connect to) Ray in a background thread, so it overlaps the driver's own start-up work
    (model load, listing, opening the table); `ensure_ray()` then waits for it. Starting an embedded Ray
    takes 5-6 s on two cores, about as long as everything else the driver does before fanning out.

    The thread stays parked after `ray.init()` until the process exits: Ray ties the processes it starts
    (GCS, raylet) to the life of the *thread* that started them (Linux PR_SET_PDEATHSIG), so a thread that
    returned would take the embedded cluster down with it.
    """
    global _prestart
    import ray  # imported here, in the caller's thread: two threads importing the same modules can deadlock

    if _prestart is not None or ray.is_initialized():
        return

    def target() -> None:
        try:
            _init_ray(None, None)
        except BaseException as exc:  # noqa: BLE001 - re-raised by ensure_ray() in the caller's thread
            _prestart_error.append(exc)
        finally:
            _prestart_done.set()
        threading.Event().wait()  # park: see the docstring

    _prestart = threading.Thread(target=target, name="aei-ray-start", daemon=True)
    _prestart.start()


def wait_prestart() -> None:
    """Wait for a `prestart_ray()` still under way (so that an exiting driver can shut Ray down cleanly)."""
    if _prestart is not None and _prestart is not threading.current_thread():
        _prestart_done.wait()


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to `address` / RAY_ADDRESS, or start an embedded local Ray."""
    wait_prestart()
    if _prestart_error:
        raise _prestart_error.pop()
    _init_ray(address, num_cpus)


def _init_ray(address: str | None, num_cpus: int | None) -> None:
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {
        "ignore_reinit_error": True,
        "log_to_driver": False,
        "logging_level": logging.WARNING,
    }
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
    from aei_batch.runners import compact

    return [compact(table.slice(i, per_block)) for i in range(0, n, per_block)]  # slices would ship it all


def run_ray(
    stage_cls: type,
    stage_kwargs: dict[str, Any],
    table: pa.Table,
    *,
    batch_size: int,
    workers: int | None = None,
) -> Iterator[pa.Table]:
    import ray
    import ray.data

    ensure_ray()
    _configure_data_context()
    cpus = int(ray.cluster_resources().get("CPU", 1))
    size = max(1, min(workers or cpus, cpus))
    # --workers N: all N actors are up before work is handed out (else the first one ready may take it all);
    # set on every run, since the DataContext outlives it in this process.
    from ray.data.context import DEFAULT_WAIT_FOR_MIN_ACTORS_S

    wait_s = int(os.environ.get("AEI_RAY_WAIT_FOR_WORKERS_S", "600")) if workers else None
    ray.data.DataContext.get_current().wait_for_min_actors_s = wait_s or DEFAULT_WAIT_FOR_MIN_ACTORS_S
    blocks = _blocks(table, batch_size, size)
    with warnings.catch_warnings():
        # Ray 2.60 has no named parameter yet for actor restarts / task retries and warns that the keyword
        # form is deprecated; it is the only way to bound retries, so that one warning is not shown.
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*")
        ds = ray.data.from_arrow(blocks).map_batches(
            stage_cls,
            fn_constructor_kwargs=stage_kwargs,
            # --workers N asks for N actors: start them all (on a multi-node cluster they spread over
            # the nodes). Without it, as many actors as there are blocks (at most the cluster's CPUs)
            # start at once: an actor takes seconds to start (imports, model, feature warm-up), so
            # growing the pool one by one from 1 left a core idle for that long on a small machine.
            compute=ray.data.ActorPoolStrategy(
                min_size=size if workers else min(size, len(blocks)), max_size=size
            ),
            num_cpus=1,
            batch_size=batch_size,
            batch_format="pyarrow",
            zero_copy_batch=True,
            # A killed worker is restarted and its batch retried. Ray Data's default retries forever, so a
            # file that kills its worker every time would hang the run: after this many retries it fails.
            max_restarts=-1,
            max_task_retries=int(os.environ.get("AEI_RAY_MAX_TASK_RETRIES", "3")),
        )
    try:
        yield from ds.iter_batches(batch_format="pyarrow", batch_size=None, prefetch_batches=1)
    except Exception as exc:
        inner = _unwrap(exc)
        if inner is not exc:
            raise inner from None
        raise
