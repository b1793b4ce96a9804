"""Per-file limits: the decode watchdog (runtime/watchdog.py), size and duration limits, option validation.

The watchdog runs functions of this module in its child process, so they are module-level.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from aei_batch.errors import ConfigError, ErrorCode, ExitCode, FileError
from aei_batch.runtime.watchdog import Watchdog
from tests.support import media as M


def _echo(x: object) -> object:
    return x


def _pid() -> int:
    return os.getpid()


def _sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


def _spin(seconds: float) -> int:
    """Busy CPU loop: no sleep a signal could cut short."""
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        n += 1
    return n


def _crash() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _file_error() -> None:
    raise FileError(ErrorCode.INVALID_AUDIO, "bad samples")


def _boom() -> None:
    raise ValueError("something broke")


@pytest.fixture
def watchdog():
    wd = Watchdog(2.0)
    yield wd
    wd.close()


def test_calls_run_in_a_child_and_return_values(watchdog: Watchdog) -> None:
    assert watchdog.call(_echo, {"a": [1, 2]}) == {"a": [1, 2]}
    assert watchdog.call(_pid) == watchdog.child_pid != os.getpid()


def test_timeout_kills_the_child_and_the_next_call_works(watchdog: Watchdog) -> None:
    first = watchdog.call(_pid)
    t0 = time.monotonic()
    with pytest.raises(FileError) as err:
        watchdog.call(_spin, 30.0)
    assert err.value.code == ErrorCode.DECODE_TIMEOUT and "--decode-timeout-s" in err.value.message
    assert time.monotonic() - t0 < 10, "the call was not cut at the timeout"
    assert watchdog.restarts == 1
    _wait_gone(first)
    assert watchdog.call(_echo, 5) == 5
    assert watchdog.child_pid not in (None, first)


def test_a_crashing_child_gives_decode_failed_and_recovers(watchdog: Watchdog) -> None:
    with pytest.raises(FileError) as err:
        watchdog.call(_crash)
    assert err.value.code == ErrorCode.DECODE_FAILED and "signal 9" in err.value.message
    assert watchdog.call(_echo, "again") == "again"


def test_errors_in_the_child_come_back_with_their_code(watchdog: Watchdog) -> None:
    with pytest.raises(FileError) as err:
        watchdog.call(_file_error)
    assert err.value.code == ErrorCode.INVALID_AUDIO and err.value.message == "bad samples"
    with pytest.raises(FileError) as err2:
        watchdog.call(_boom)
    assert err2.value.code == ErrorCode.DECODE_FAILED and "ValueError: something broke" in err2.value.message
    assert watchdog.call(_echo, 1) == 1  # the same child is still serving


def test_no_timeout_runs_in_process() -> None:
    wd = Watchdog(None)
    assert wd.call(_pid) == os.getpid() and wd.child_pid is None
    assert Watchdog(0).timeout_s is None


def test_decode_audio_through_the_watchdog(watchdog: Watchdog) -> None:
    from aei_batch.decode.audio import decode_audio

    clip = watchdog.call(decode_audio, M.sine_wav_bytes(seconds=1.0, sr=16000), "a.wav")
    assert abs(clip.duration_s - 1.0) < 0.01
    with pytest.raises(FileError) as err:
        watchdog.call(decode_audio, b"", "empty.wav")
    assert err.value.code == ErrorCode.EMPTY_FILE


def test_child_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    """A SIGKILLed worker (Ray actor, driver) must not leave a decoder behind."""
    script = textwrap.dedent(
        """
        import sys, time
        from aei_batch.runtime.watchdog import Watchdog
        from tests.unit.test_limits import _pid
        wd = Watchdog(5.0)
        print(wd.call(_pid), flush=True)
        time.sleep(60)
        """
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env, cwd=root
    )
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    assert _alive(child)
    proc.kill()
    proc.wait(timeout=10)
    _wait_gone(child)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), f"process {pid} is still alive"


# ------------------------------------------------------------------ size and duration limits


def test_too_long_is_refused_before_decoding() -> None:
    """The soundfile path checks the header's frame count first: no memory for a too-long file."""
    from aei_batch.decode.audio import decode_audio

    with pytest.raises(FileError) as err:
        decode_audio(M.sine_wav_bytes(seconds=5.0, sr=8000), "long.wav", max_duration_s=2.0)
    assert err.value.code == ErrorCode.TOO_LONG and "--max-duration-s" in err.value.message


def test_size_limit_without_a_listed_size_reads_at_most_limit_plus_one(tmp_path: Path) -> None:
    """A manifest without sizes: the read stops after limit + 1 bytes and the file is FILE_TOO_LARGE."""
    from aei_batch.scoring.inputs import fetch
    from aei_batch.scoring.rows import RunContext

    path = tmp_path / "big.wav"
    path.write_bytes(M.noise_wav_bytes(seconds=2.0))
    ctx = RunContext.new("unused", max_file_bytes=1000)
    with pytest.raises(FileError) as err:
        fetch({"uri": str(path), "size": None}, ctx)
    assert err.value.code == ErrorCode.FILE_TOO_LARGE
    with pytest.raises(FileError) as err2:
        fetch({"uri": str(path), "size": path.stat().st_size}, ctx)
    assert err2.value.code == ErrorCode.FILE_TOO_LARGE and "--max-file-mb" in err2.value.message


def test_silence_is_an_error_row_not_a_prediction() -> None:
    import numpy as np

    from aei_batch.decode.audio import decode_audio

    with pytest.raises(FileError) as err:
        decode_audio(M.wav_bytes(np.zeros(16000, np.float32), 16000), "quiet.wav")
    assert err.value.code == ErrorCode.SILENT
    quiet_but_there = M.wav_bytes(M.noise(seconds=1.0, amp=0.001), 16000)  # -60 dBFS: still scored
    assert decode_audio(quiet_but_there, "soft.wav").duration_s > 0.9


@pytest.mark.parametrize(
    ("option", "value"),
    [("max_file_mb", 0), ("max_duration_s", -1), ("decode_timeout_s", -1), ("max_error_rate", 1.5)],
)
def test_score_options_validate_limits(option: str, value: float) -> None:
    from aei_batch.scoring.job import ScoreOptions

    with pytest.raises(ConfigError):
        ScoreOptions(source="x", model_dir="m", output="o", **{option: value})


def test_bad_limit_on_the_command_line_exits_4(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from aei_batch.cli import app

    res = CliRunner().invoke(app, ["score", str(tmp_path), "-m", "m", "-o", "o", "--decode-timeout-s", "-2"])
    assert res.exit_code == ExitCode.CONFIG, res.output
    assert "--decode-timeout-s" in res.output
