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
from typing import Any

import pyarrow as pa

from aei_batch.errors import AeiError, ClusterUnreachableError, JobFailedError
from aei_batch.runtime.adapter import StageSpec, WorkerAdapter

log = logging.getLogger(__name__)


#: Ray is process-global, so what this process did to it is too: whether it started an embedded Ray (and
#: must stop it), and the background start-up under way. Workers and runs are not: see `RayBackend`.
_start_thread: threading.Thread | None = None
_start_done = threading.Event()
_start_error: list[BaseException] = []
_owned = False


def start_ray_in_background(on_up: Any = None) -> None:
    """Start (or connect to) Ray in a background thread, so that it overlaps the driver's own start-up (model
    load, listing, opening the table); `ensure_ray()` then waits for it. `on_up()` runs in that thread once
    Ray is up (the backend starts its actors there: their imports and decoder children get going while the
    driver is still listing).

    The thread stays parked after `ray.init()` until the process exits: Ray ties the processes it starts
    (GCS, raylet) to the life of the *thread* that started them (Linux PR_SET_PDEATHSIG), so a thread that
    returned would take the embedded cluster down with it.
    """
    global _start_thread
    import ray  # imported here, in the caller's thread: two threads importing the same modules can deadlock

    if _start_thread is not None or ray.is_initialized():
        if on_up is not None and ray.is_initialized():
            on_up()
        return

    def target() -> None:
        try:
            _init_ray(None, None)
            if on_up is not None:
                on_up()
        except BaseException as exc:  # noqa: BLE001 - re-raised by ensure_ray() in the caller's thread
            _start_error.append(exc)
        finally:
            _start_done.set()
        threading.Event().wait()  # park: see the docstring

    _start_thread = threading.Thread(target=target, name="aei-ray-start", daemon=True)
    _start_thread.start()


def wait_started() -> None:
    """Wait for a background start still under way (so that an exiting driver can shut Ray down cleanly)."""
    if _start_thread is not None and _start_thread is not threading.current_thread():
        _start_done.wait()


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to `address` / RAY_ADDRESS, or start a new embedded local Ray."""
    wait_started()
    if _start_error:
        raise _start_error.pop()
    _init_ray(address, num_cpus)


class _QuietNotices(logging.Filter):
    """Two notices Ray prints on every embedded start that say nothing to act on (see `_init_ray`)."""

    NOTICES = ("SIGTERM handler is not set", "Token authentication is enabled for this Ray cluster")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(n in message for n in self.NOTICES)


def _quiet(logger_name: str) -> None:
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, _QuietNotices) for f in logger.filters):
        logger.addFilter(_QuietNotices())


def check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """A named cluster that does not answer fails now, with exit 8, instead of Ray retrying for minutes."""
    import socket

    target = address.split("://", 1)[-1].rstrip("/")
    host, _, port = target.rpartition(":")
    if address in ("auto", "local") or not host or not port.isdigit():
        return  # Ray resolves these itself
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ClusterUnreachableError(
            f"the Ray cluster at {address} does not answer ({exc})",
            hint="check RAY_ADDRESS / --address and that the head node is up; unset RAY_ADDRESS to run on "
            "an embedded local Ray",
        ) from None


def _init_ray(address: str | None, num_cpus: int | None) -> None:
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    # The background start calls ray.init() from a thread, where Ray cannot install its SIGTERM handler and
    # says so on every run (the CLI handles SIGTERM itself). An embedded Ray keeps Ray's token
    # authentication on (it is bound to this machine's address, not only loopback) and its token is
    # generated locally; the notice that it is on is meant for cluster operators, so it is dropped here.
    # Every other warning of Ray's still shows.
    _quiet("ray._private.worker")
    _quiet("ray._private.authentication.authentication_token_setup")
    kwargs: dict[str, Any] = {
        "ignore_reinit_error": True,
        "log_to_driver": False,
        "logging_level": logging.WARNING,
    }
    if address:
        check_reachable(address)
        ray.init(address=address, **kwargs)
    else:
        global _owned
        # address="local": always a new local Ray. A bare ray.init() would attach to whatever cluster a stale
        # address file in Ray's temp folder names, and hang when that node is dead.
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **kwargs)
        _owned = True
        import atexit

        atexit.register(shutdown_owned)  # runs before Ray's own exit hook (registered earlier), and faster


def shutdown_owned() -> None:
    """Stop the embedded Ray this process started, if it did (the CLI calls this at the end of a command).
    Ray's own exit hook would do it too, but sleeps 0.5 s first and ran about 2.4 s after the summary on
    two cores; a Ray this process connected to (a cluster, a caller's `ray.init`) is left alone."""
    global _owned
    wait_started()
    if _owned:
        import ray

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
    """A Ray actor that runs one stage through the worker adapter, built on its first batch (model loaded
    once per actor). The spec comes as an object reference in a list, so that the actor gets the reference
    itself, builds the stage once per run, and rebuilds it after a restart."""

    def __init__(self, warm_modules: tuple[str, ...] = ()) -> None:
        import importlib

        for name in warm_modules:  # the stage's libraries, imported before the first batch
            importlib.import_module(name)
        self._key: str | None = None
        self._adapter: WorkerAdapter | None = None

    def ready(self) -> bool:
        return True

    def run(self, spec: list[Any], batch: pa.Table) -> Any:
        import ray

        if self._key != spec[0].hex():
            if self._adapter is not None:
                self._adapter.teardown()
            self._adapter, self._key = WorkerAdapter(ray.get(spec[0])), spec[0].hex()
        assert self._adapter is not None
        return self._adapter.run(batch)


def _cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


class RayBackend:
    """Ray core actors (`StageWorker`, one CPU each) as a `Backend` for the dispatch loop.

    Without `workers`, one actor per CPU of the cluster (at most one per batch); work goes to each actor as
    soon as it is up. With `workers=N`, N actors, and no work is handed out until all N are up (so they
    spread over the nodes), waiting at most AEI_RAY_WAIT_FOR_WORKERS_S seconds (600). A killed actor is
    restarted by Ray and its batches retried by Ray (`max_task_retries`), so this backend never reports
    WorkerLost."""

    name = "ray"

    def __init__(self, workers: int | None = None, warm_modules: tuple[str, ...] = ()) -> None:
        self.workers = workers
        self.warm_modules = warm_modules
        self._actors: list[Any] = []
        self._lock = threading.Lock()
        self._spec_ref: Any = None
        self._starting: dict[Any, int] = {}
        self._up: list[int] = []
        self._load: list[int] = []
        self._running: dict[Any, int] = {}
        self._deadline = 0.0
        self._wait_s = float(os.environ.get("AEI_RAY_WAIT_FOR_WORKERS_S", "600"))
        self._closed = False
        self._task_name = "StageWorker.run"

    def start_early(self) -> None:
        """Start Ray in the background; the actors start as soon as it is up."""
        start_ray_in_background(on_up=lambda: self._add_actors(self.workers or _cluster_cpus()))

    def _add_actors(self, n: int) -> None:
        import ray

        retries = int(os.environ.get("AEI_RAY_MAX_TASK_RETRIES", "3"))
        actor_cls = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=retries)(StageWorker)
        with self._lock:
            if self._closed:  # the run ended (failed early) before Ray came up: start nothing
                return
            self._actors += [actor_cls.remote(self.warm_modules) for _ in range(n)]

    def bind(self, spec: StageSpec, n_batches: int) -> None:
        """Prepare a run of `spec` over `n_batches` batches: actors sized to the run, spec in the store."""
        import ray

        ensure_ray()
        size = max(1, self.workers) if self.workers else max(1, min(_cluster_cpus(), n_batches))
        with self._lock:
            for extra in self._actors[size:]:  # started early for a bigger run than this one
                ray.kill(extra)
            del self._actors[size:]
        if len(self._actors) < size:
            self._add_actors(size - len(self._actors))
        self._spec_ref = [ray.put(spec)]
        self._task_name = f"StageWorker.run {spec.name}"  # the task records, dashboard and process title
        self._starting = {a.ready.remote(): i for i, a in enumerate(self._actors)}
        self._up, self._load, self._running = [], [0] * size, {}
        self._deadline = time.monotonic() + self._wait_s

    def free_slots(self, in_flight: int) -> int:
        if self.workers and len(self._up) < len(self._actors):
            return 0
        return sum(2 - self._load[i] for i in self._up)

    def submit(self, batch: pa.Table) -> Any:
        i = min(self._up, key=lambda j: self._load[j])
        ref = self._actors[i].run.options(name=self._task_name).remote(self._spec_ref, batch)
        self._running[ref] = i
        self._load[i] += 1
        return ref

    def wait(self, handles: list[Any]) -> list[Any]:
        import ray

        if not handles and not self._starting:
            raise JobFailedError("no Ray worker could be started", hint="see the Ray logs")
        timeout = None if handles else max(0.0, self._deadline - time.monotonic())
        done, _ = ray.wait([*handles, *self._starting], num_returns=1, timeout=timeout)
        if not done:
            raise JobFailedError(
                f"{len(self._starting)} of {len(self._actors)} Ray workers were not up after "
                f"{self._wait_s:g} s (AEI_RAY_WAIT_FOR_WORKERS_S)",
                hint="the cluster has fewer free CPUs than workers asked for: lower --workers",
            )
        ref = done[0]
        if ref in self._starting:
            self._get(ref)  # a constructor that failed raises here
            self._up.append(self._starting.pop(ref))
            return []
        return [ref]

    def result(self, handle: Any) -> Any:
        i = self._running.pop(handle)
        self._load[i] -= 1
        return self._get(handle)

    @staticmethod
    def _get(ref: Any) -> Any:
        import ray

        try:
            return ray.get(ref)
        except Exception as exc:
            inner = _unwrap(exc)
            if inner is not exc:
                raise inner from None
            raise

    def recover(self) -> None:
        """Ray restarts dead actors and retries their tasks itself."""

    def close(self, *, abort: bool = False) -> None:
        import ray

        with self._lock:
            self._closed = True
            actors, self._actors = self._actors, []
        if not ray.is_initialized():
            return
        for a in actors:
            with contextlib.suppress(Exception):
                ray.kill(a)
