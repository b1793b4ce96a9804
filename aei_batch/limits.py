"""Per-file limits that need a process boundary: the decode timeout (a watchdog around a child process).

Why a child process and not a signal or a thread:

* A hung FFmpeg call sits in C code. A Python signal handler (``signal.alarm``) only runs when control
  comes back to the interpreter, so it cannot interrupt it; and signals only work in the main thread.
  (Ray runs a synchronous actor's tasks on the worker's main thread, but the local runner may be called
  from any thread, and the C-code problem remains either way.)
* A thread with a timeout can stop *waiting*, but cannot stop the decode: the stuck thread keeps a core
  and its memory until the worker dies.

So each worker (Ray actor or local stage) owns one long-lived decoder child, started lazily with
``python -c`` (no ``multiprocessing`` spawn, which would re-run Ray's worker ``__main__``). A call
sends the file's bytes over a pipe and waits at most ``timeout_s`` for the decoded clip. On timeout
the child is killed (SIGKILL) and the file becomes a ``DECODE_TIMEOUT`` row; if the child dies (a
crash in a native decoder, the kernel's OOM killer) the file becomes a ``DECODE_FAILED`` row. In both
cases the next file gets a fresh child and the worker carries on. The child exits by itself when
its parent dies (end of file on its pipe), so a killed Ray worker leaves no decoder behind.

Cost: one interpreter start per worker (about 0.5 s, once) and a pickle round trip per file (the
bytes in, the float32 samples out; about 1 ms for a 4 s clip).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import subprocess
import sys
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
        self._proc: subprocess.Popen[bytes] | None = None
        self._send: Connection | None = None
        self._recv: Connection | None = None
        self.restarts = 0

    @property
    def child_pid(self) -> int | None:
        """PID of the current child process (None before the first call or after a kill)."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`fn(*args, **kwargs)`, in the child when a timeout is set. `fn` must be importable by name."""
        if self.timeout_s is None:
            return fn(*args, **kwargs)
        if self._ensure_child():  # import the module outside the per-file clock (numpy, codecs: ~0.5 s)
            self._exchange((fn.__module__, None, (), {}), max(self.timeout_s, _WARMUP_TIMEOUT_S))
        return self._exchange((fn.__module__, fn.__qualname__, args, kwargs), self.timeout_s)

    def _exchange(self, message: _Call, timeout: float) -> Any:
        assert self._send is not None and self._recv is not None
        try:
            self._send.send_bytes(pickle.dumps(message, protocol=5))
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
        code = f"from aei_batch.limits import _child_main; _child_main({to_child_r}, {from_child_w})"
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


def _child_main(read_fd: int, write_fd: int) -> None:
    """The child's loop: receive a call, run it, send back ("ok", result) or an error. Exits on EOF."""
    import importlib
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
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
