"""The Ray runner: a pool of Ray actors, each holding the stage, fed batches of input references.

Each actor (`StageWorker`, one CPU) constructs the stage once (model loaded once per worker) and is
fed batches; reading, decoding, features and the model run fused inside the actor, so waveforms never
cross the object store. The driver hands out batches only to actors that are up, at most two in flight
per actor, and yields outputs as they complete; it writes them to the staging file of the sink.
Memory stays flat: the driver holds the input table and a few batches, never the outputs of the run.

A killed actor is restarted by Ray (`max_restarts=-1`) and the batches it held are retried
(`max_task_retries`, `AEI_RAY_MAX_TASK_RETRIES`, default 3); rows only count once they reach the
driver, so a retried batch cannot duplicate rows. The actors are Ray core actors, not a Ray Data
pipeline: on a small machine Ray Data's streaming executor (its scheduling loop, operator state, block
bookkeeping) cost seconds per run and a share of a core (docs/PERFORMANCE.md) for what is here a
fan-out of independent batches. Works with embedded local Ray (default) or any cluster via
`RAY_ADDRESS` / `--address`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from aei_batch.errors import AeiError

log = logging.getLogger(__name__)


_prestart: threading.Thread | None = None
_prestart_done = threading.Event()
_prestart_error: list[BaseException] = []
_owned = False  # this process started an embedded local Ray (not a cluster it connected to)
_warm_actors: list[Any] = []  # StageWorker actors started by prestart_ray(), taken by the next run_ray()


def prestart_ray(workers: int | None = None) -> None:
    """Start (or connect to) Ray in a background thread, so it overlaps the driver's own start-up work
    (model load, listing, opening the table); `ensure_ray()` then waits for it. Starting an embedded Ray
    takes 3-6 s on two cores, about as long as everything else the driver does before fanning out. As
    soon as Ray is up the thread also starts the workers (`workers`, else one per CPU of the cluster):
    their imports and decoder children get going while the driver is still listing.

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
            _warm_actors.extend(_new_actors(workers or _cluster_cpus()))
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


class _NoSigtermNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


def _init_ray(address: str | None, num_cpus: int | None) -> None:
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    # prestart_ray() calls ray.init() from a background thread, where Ray cannot install its SIGTERM handler
    # and says so on every run; without it a SIGTERM ends the driver with Python's default action and
    # Ray's processes follow it (they die with the thread that started them). Not worth a warning.
    worker_log = logging.getLogger("ray._private.worker")
    if not any(isinstance(f, _NoSigtermNotice) for f in worker_log.filters):
        worker_log.addFilter(_NoSigtermNotice())
    kwargs: dict[str, Any] = {
        "ignore_reinit_error": True,
        "log_to_driver": False,
        "logging_level": logging.WARNING,
    }
    if address:
        ray.init(address=address, **kwargs)
    else:
        global _owned
        ray.init(num_cpus=num_cpus, include_dashboard=False, **kwargs)
        _owned = True


def shutdown_owned() -> None:
    """Stop the embedded Ray this process started, if it did (the CLI calls this at the end of a command).
    Ray's own exit hook would do it too, but sleeps 0.5 s first and ran about 2.4 s after the summary on
    two cores; a Ray this process connected to (a cluster, a caller's `ray.init`) is left alone."""
    global _owned
    wait_prestart()
    if _owned:
        import ray

        _warm_actors.clear()
        _stop_autoscaler_monitor()
        ray.shutdown()
        _owned = False


def _stop_autoscaler_monitor() -> None:
    """Kill the embedded Ray's autoscaler monitor before `ray.shutdown()` stops the rest.

    `ray.shutdown()` stops its processes one after the other, the GCS before the monitor; the monitor's
    SIGTERM handler then tries to report its own termination to the GCS that is gone, and is killed
    after Ray's one-second grace period: 1.0 of the 1.3 s a shutdown took on two cores. The monitor of
    a one-node embedded Ray has nothing to scale and no state to save, so it gets SIGKILL first. This
    reads Ray's private node record; if that ever changes shape, shutdown is just slower again."""
    import signal

    try:
        from ray._private import worker

        node = worker._global_node
        procs: list[Any] = node.all_processes.get("monitor", []) if node is not None else []
    except Exception:  # noqa: BLE001 - private API: fall back to Ray's own order
        return
    for info in procs:
        with contextlib.suppress(Exception):
            if info.process.poll() is None:
                info.process.send_signal(signal.SIGKILL)
                info.process.wait(timeout=1)


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


class StageWorker:
    """A Ray actor that runs one stage, built on its first batch (model loaded once per actor).

    The stage (its class and constructor arguments) comes as an object reference in a list, so that the
    actor gets the reference itself, builds the stage once per run, and rebuilds it after a restart."""

    def __init__(self) -> None:
        import aei_batch.models.loader  # noqa: F401 - the model libraries, imported before the first batch
        import aei_batch.scoring.stage  # noqa: F401

        self._spec: str | None = None
        self._stage: Any = None

    def ready(self) -> bool:
        return True

    def run(self, spec: list[Any], batch: pa.Table) -> pa.Table:
        import ray

        if self._spec != spec[0].hex():
            stage_cls, stage_kwargs = ray.get(spec[0])
            self._stage, self._spec = stage_cls(**stage_kwargs), spec[0].hex()
        return self._stage(batch)  # type: ignore[no-any-return]


def _cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _new_actors(n: int) -> list[Any]:
    import ray

    retries = int(os.environ.get("AEI_RAY_MAX_TASK_RETRIES", "3"))
    actor_cls = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=retries)(StageWorker)
    return [actor_cls.remote() for _ in range(n)]


def run_ray(
    stage_cls: type,
    stage_kwargs: dict[str, Any],
    table: pa.Table,
    *,
    batch_size: int,
    workers: int | None = None,
) -> Iterator[pa.Table]:
    """Run `stage_cls(**stage_kwargs)` over `table` in batches on Ray actors; yield outputs as they
    complete (not in input order).

    Without `workers`, one actor per CPU of the cluster (at most one per batch); work goes to each actor
    as soon as it is up. With `workers=N`, N actors, and no work is handed out until all N are up (so
    they spread over the nodes), waiting at most AEI_RAY_WAIT_FOR_WORKERS_S seconds (600)."""
    import ray

    from aei_batch.errors import JobFailedError
    from aei_batch.runtime.runners import compact

    ensure_ray()
    n_batches = -(-table.num_rows // batch_size)
    if n_batches == 0:
        return
    size = max(1, workers) if workers else max(1, min(_cluster_cpus(), n_batches))
    actors: list[Any] = _warm_actors[:size]
    for extra in _warm_actors[size:]:  # prestarted for a bigger run than this one
        ray.kill(extra)
    _warm_actors.clear()
    actors += _new_actors(size - len(actors))
    wait_s = float(os.environ.get("AEI_RAY_WAIT_FOR_WORKERS_S", "600"))
    spec = [ray.put((stage_cls, stage_kwargs))]
    task_name = f"StageWorker.run {stage_cls.__name__}"  # the task records, dashboard and process title
    starting = {a.ready.remote(): i for i, a in enumerate(actors)}
    up: list[int] = []  # indices of actors that are up
    load = [0] * size  # batches in flight per actor
    running: dict[Any, int] = {}  # result ref -> actor index
    next_row = 0
    deadline = time.monotonic() + wait_s
    try:
        while next_row < table.num_rows or running:
            may_dispatch = not workers or len(up) == size
            for i in sorted(up, key=lambda j: load[j]) if may_dispatch else []:
                while load[i] < 2 and next_row < table.num_rows:
                    batch = compact(table.slice(next_row, batch_size))  # not the slice: it ships the table
                    next_row += batch.num_rows
                    running[actors[i].run.options(name=task_name).remote(spec, batch)] = i
                    load[i] += 1
            if not running and not starting:
                raise JobFailedError("no Ray worker could be started", hint="see the Ray logs")
            timeout = None if running else max(0.0, deadline - time.monotonic())
            done, _ = ray.wait([*running, *starting], num_returns=1, timeout=timeout)
            if not done:
                raise JobFailedError(
                    f"{len(starting)} of {size} Ray workers were not up after {wait_s:g} s "
                    "(AEI_RAY_WAIT_FOR_WORKERS_S)",
                    hint="the cluster has fewer free CPUs than workers asked for: lower --workers",
                )
            ref = done[0]
            if ref in starting:
                ray.get(ref)  # a constructor that failed raises here
                up.append(starting.pop(ref))
                continue
            i = running.pop(ref)
            load[i] -= 1
            yield ray.get(ref)
    except Exception as exc:
        inner = _unwrap(exc)
        if inner is not exc:
            raise inner from None
        raise
    finally:
        for a in actors:
            with contextlib.suppress(Exception):
                ray.kill(a)
