"""Per-file limits that need a process boundary: the decode timeout (a watchdog around a child process).

Why a child process and not a signal or a thread:

* A hung FFmpeg call sits in C code. A Python signal handler (``signal.alarm``) only runs when control
  comes back to the interpreter, so it cannot interrupt it; and signals only work in the main thread.
  (Ray runs a synchronous actor's tasks on the worker's main thread, but the local runner may be called
  from any thread, and the C-code problem remains either way.)
* A thread with a timeout can stop *waiting*, but cannot stop the decode: the stuck thread keeps a core
  and its memory until the worker dies.

So each worker (Ray actor, pool worker or local stage) owns one long-lived decoder child, started
lazily. Outside Ray it is a ``fork`` of the worker (milliseconds: the child inherits the worker's
imported modules); in a Ray worker, whose process holds Ray's own threads, it is a new interpreter
started with ``python -c`` (no ``multiprocessing`` spawn, which would re-run Ray's worker
``__main__``). ``AEI_DECODER_START=exec`` forces the latter everywhere. A call sends the file (a local
file's path, which the child reads itself, or an S3 object's bytes) over a pipe and waits at most
``timeout_s`` for the result (the decoded clip, or the file's feature vector:
aei_batch/features/clip.py). On timeout
the child is killed (SIGKILL) and the file becomes a ``DECODE_TIMEOUT`` row; if the child dies (a
crash in a native decoder, the kernel's OOM killer) the file becomes a ``DECODE_FAILED`` row. In both
cases the next file gets a fresh child and the worker carries on. The child exits by itself when
its parent dies (end of file on its pipe), so a killed Ray worker leaves no decoder behind.

Cost: a fork per worker (or one interpreter start, about 0.5 s, under Ray), once, and a pickle round
trip per file (the path or bytes in, the result out). The pipes are enlarged to 1 MiB where the kernel allows,
so that one message is one write instead of a ping-pong of 64 KiB chunks between the two processes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from aei_batch.errors import ErrorCode, FileError

log = logging.getLogger(__name__)

_Call = tuple[str, str | None, tuple[Any, ...], dict[str, Any]]  # module, qualname (None: import only), args
_WARMUP_TIMEOUT_S = 60.0
#: A module whose functions the watchdog runs may define this no-argument function: a new child calls it
#: once, outside the per-file clock (e.g. to import the codecs its functions import lazily).
WARM_UP_HOOK = "watchdog_warm_up"


class Watchdog:
    """Run module-level functions in a child process with a per-call timeout.

    `timeout_s=None` (or 0) runs calls in this process with no timeout (what training uses).
    Exceptions raised by the function come back as they are when they pickle, as `FileError`
    otherwise; a timeout or a dead child raise `FileError` with `DECODE_TIMEOUT` / `DECODE_FAILED`.
    """

    def __init__(self, timeout_s: float | None, *, what: str = "decoding") -> None:
        self.timeout_s = timeout_s if timeout_s and timeout_s > 0 else None
        self.what = what
        self._proc: subprocess.Popen[bytes] | _ForkedChild | None = None
        self._send: Connection | None = None
        self._recv: Connection | None = None
        self.restarts = 0
        self._warming = False  # a prestart's warm-up reply is still to be read

    @property
    def child_pid(self) -> int | None:
        """PID of the current child process (None before the first call or after a kill)."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def prestart(self, module: str) -> None:
        """Start the child now and have it import `module` (and run its warm-up hook) without waiting for
        it: the start overlaps the caller's own set-up; the first `call` waits for the warm-up to finish."""
        if self.timeout_s is None or self._warming:
            return
        if self._ensure_child():
            assert self._send is not None
            try:
                self._send.send_bytes(pickle.dumps((module, None, (), {}), protocol=5))
            except OSError:
                self._kill()
                return
            self._warming = True

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`fn(*args, **kwargs)`, in the child when a timeout is set. `fn` must be importable by name."""
        if self.timeout_s is None:
            return fn(*args, **kwargs)
        if self._warming:  # a prestart's warm-up, outside the per-file clock
            self._warming = False
            self._receive(max(self.timeout_s, _WARMUP_TIMEOUT_S))
        if self._ensure_child():  # import the module outside the per-file clock (numpy, codecs: ~0.5 s)
            self._exchange((fn.__module__, None, (), {}), max(self.timeout_s, _WARMUP_TIMEOUT_S))
        return self._exchange((fn.__module__, fn.__qualname__, args, kwargs), self.timeout_s)

    def _exchange(self, message: _Call, timeout: float) -> Any:
        assert self._send is not None
        try:
            self._send.send_bytes(pickle.dumps(message, protocol=5))
        except (BrokenPipeError, EOFError, OSError):
            return self._child_died()
        return self._receive(timeout)

    def _receive(self, timeout: float) -> Any:
        assert self._recv is not None
        try:
            ready = self._recv.poll(timeout)
        except (BrokenPipeError, EOFError, OSError):
            return self._child_died()
        if not ready:
            self._kill()
            raise FileError(
                ErrorCode.DECODE_TIMEOUT,
                f"{self.what} took longer than {timeout:g} s (--decode-timeout-s); decoder stopped",
            )
        try:
            status, payload = pickle.loads(self._recv.recv_bytes())
        except (EOFError, OSError):
            return self._child_died()
        if status == "ok":
            return payload
        if status == "file_error":
            code, text = payload
            raise FileError(ErrorCode(code), text)
        raise FileError(ErrorCode.DECODE_FAILED, f"{self.what} failed: {payload}")

    def close(self) -> None:
        """Stop the child (it would also exit on its own when this process ends)."""
        self._kill()

    def __del__(self) -> None:  # best effort: a stage dropped without close() leaves no child behind
        with contextlib.suppress(Exception):  # interpreter shutdown
            self._kill()

    # ------------------------------------------------------------------ child management

    def _ensure_child(self) -> bool:
        """Start a child unless one is running; True when a new one was started."""
        if self._proc is not None and self._proc.poll() is None:
            return False
        self._kill()
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        for fd in (to_child_w, from_child_w):
            _enlarge_pipe(fd)
        if fork_is_safe():
            parent_ends = (to_child_w, from_child_r)
            self._proc = _ForkedChild.start(to_child_r, from_child_w, close_in_child=parent_ends)
        else:
            code = (
                "from aei_batch.runtime.watchdog import _child_main; "
                f"_child_main({to_child_r}, {from_child_w})"
            )
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
            self._proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-c", code],
                pass_fds=(to_child_r, from_child_w),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=env,
                close_fds=True,
            )
        os.close(to_child_r)
        os.close(from_child_w)
        self._send = Connection(to_child_w, readable=False)
        self._recv = Connection(from_child_r, writable=False)
        return True

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        self._warming = False
        for conn in (self._send, self._recv):
            if conn is not None:
                conn.close()
        self._send = self._recv = None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
            self.restarts += 1

    def _child_died(self) -> Any:
        proc = self._proc
        code = proc.wait(timeout=10) if proc is not None else None
        self._kill()
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
        raise FileError(
            ErrorCode.DECODE_FAILED,
            f"the decoder process {how} while {self.what} (a crash in the decoder or out of memory)",
        )


_PIPE_BYTES = 1 << 20
_F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Linux); Python 3.11's fcntl has no name for it


def _enlarge_pipe(fd: int) -> None:
    """Ask for a 1 MiB pipe buffer (Linux; best effort: the default 64 KiB still works, only slower)."""
    if sys.platform == "linux":
        import fcntl

        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_BYTES)


_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = 9) -> None:
    """Ask the kernel to send `sig` to this process when its parent dies (Linux; best effort elsewhere).

    A pool worker or decoder child must not outlive a driver killed by SIGKILL or the OOM killer: without
    this they sat under PID 1, blocked on a pipe, holding hundreds of MB."""
    if sys.platform != "linux":
        return
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)


def fork_is_safe() -> bool:
    """Whether a child of this process may be a `fork` of it (the decoder child; the pool runner's workers):
    Linux, not a Ray process (Ray's threads and gRPC state do not survive a fork) and no other Python
    thread that could hold a lock the child needs. `AEI_DECODER_START=exec` says no."""
    if os.environ.get("AEI_DECODER_START", "auto") == "exec" or sys.platform != "linux":
        return False
    ray = sys.modules.get("ray")
    if ray is not None and getattr(ray, "is_initialized", lambda: True)():
        return False
    return threading.active_count() == 1


class _ForkedChild:
    """The part of `subprocess.Popen` the watchdog uses, for a child made by `os.fork()`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    @classmethod
    def start(cls, read_fd: int, write_fd: int, close_in_child: tuple[int, ...]) -> _ForkedChild:
        pid = os.fork()
        if pid == 0:  # the child: serve calls until the parent closes its end, then leave at once
            code = 0
            try:
                for fd in close_in_child:  # the parent's ends: EOF must reach the child when the parent dies
                    os.close(fd)
                devnull = os.open(os.devnull, os.O_RDWR)
                os.dup2(devnull, 0)
                os.dup2(devnull, 1)  # like the exec'd child: stdout stays the parent's (the CLI's output)
                _child_main(read_fd, write_fd)
            except BaseException:  # noqa: BLE001 - the parent sees the exit code as a dead decoder
                code = 70
            finally:
                os._exit(code)  # no atexit handlers, no flush of buffers copied from the parent
        return cls(pid)

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = 0
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, 9)

    def wait(self, timeout: float | None = None) -> int:
        end = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if end is not None and time.monotonic() > end:
                raise subprocess.TimeoutExpired(f"decoder {self.pid}", timeout or 0)
            time.sleep(0.002)
        assert self.returncode is not None
        return self.returncode


def _child_main(read_fd: int, write_fd: int) -> None:
    """The child's loop: receive a call, run it, send back ("ok", result) or an error. Exits on EOF."""
    import importlib
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent's SIGTERM handler is not this process's
    die_with_parent()
    recv, send = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    while True:
        try:
            module, qualname, args, kwargs = pickle.loads(recv.recv_bytes())
        except EOFError:
            return
        try:
            fn: Any = importlib.import_module(module)
            if qualname is None:  # warm-up: import, and run the module's own warm-up (lazy imports, caches)
                warm = getattr(fn, WARM_UP_HOOK, None)
                reply: tuple[str, Any] = ("ok", warm() if callable(warm) else None)
            else:
                for part in qualname.split("."):
                    fn = getattr(fn, part)
                reply = ("ok", fn(*args, **kwargs))
        except FileError as err:
            reply = ("file_error", (str(err.code), err.message))
        except Exception as exc:  # noqa: BLE001 - reported to the parent as a per-file failure
            reply = ("error", f"{type(exc).__name__}: {str(exc)[:300]}")
        send.send_bytes(pickle.dumps(reply, protocol=5))
