"""Every kind of broken input, scored through the real CLI on a real local Ray: exactly one row each.

The corpus is generated here (tests/support/media.py): empty and garbage files, truncated and lying WAV
headers, a 0.05 s clip, silence, clipping, NaN/Inf floats, 8 kHz mu-law, 6 channels, 96 kHz/24-bit,
containers without an audio or a video track, a video without a face, text renamed .mp3, a RAVDESS-like
name with invalid codes, awkward names, duplicated content, a symlink loop and a dangling link, a
30-minute file, a file over the duration limit and one over the size limit.

Each case lists the outcomes it accepts ("ok" or an ErrorCode). Video cases: until video scoring lands
the audio model decides them (an mp4 without audio is NO_AUDIO_STREAM); a video model may later score
them, so those cases also accept the outcomes a video model documents. The observed table is written
as markdown to the pytest tmp dir (and to $AEI_ROBUSTNESS_REPORT when set) and printed (see with -s).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from aei_batch.errors import ErrorCode, ExitCode
from aei_batch.records import COL, STATUS_OK
from tests.support import media as M

pytestmark = [pytest.mark.slow, pytest.mark.ray]

OK = "ok"
MAX_FILE_MB = 40  # the size-limit case is 43 MB; the 30-minute case (28.8 MB) stays under it
MAX_DURATION_S = 1800  # the 30-minute case is at the limit (within); the 1-hour case is over it
# 20 s windows: the 30-minute file is scored in 90 segments (the 3 s default makes 1,200 and takes ~100 s
# on two busy cores); every other case is shorter than two windows and is scored whole.
LONG_FILE_WINDOWS = ("--window-s", "20", "--hop-s", "20")
VIDEO_LATER = frozenset({"NO_FACE", "NO_VIDEO_STREAM"})  # documented video outcomes, accepted if defined


@dataclass(frozen=True)
class Case:
    """One generated input and the outcomes it may give."""

    path: str  # relative to the corpus root
    what: str
    accept: frozenset[str]


def _codes(*names: str) -> frozenset[str]:
    defined = {c.value for c in ErrorCode} | {OK}
    return frozenset(n for n in names if n in defined)


def _write(root: Path, rel: str, data: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_long_wav(path: Path, seconds: int, sr: int = 8000, subtype: str = "PCM_16") -> None:
    """A long low-rate WAV written block by block (one 10 s block repeated): cheap in time and memory."""
    block = (0.3 * np.sin(2 * np.pi * 300 * np.arange(sr * 10) / sr)).astype(np.float32)
    block *= np.linspace(0.5, 1.0, block.size, dtype=np.float32)  # not a pure tone: MFCC stats vary
    with sf.SoundFile(path, "w", sr, 1, subtype, format="WAV") as f:
        for _ in range(seconds // 10):
            f.write(block)


def build_corpus(root: Path) -> list[Case]:
    """Write every bad input under `root`; return the cases (one per file that listing should find)."""
    cases: list[Case] = []

    def add(rel: str, data: bytes | None, what: str, *accept: str) -> None:
        if data is not None:
            _write(root, rel, data)
        cases.append(Case(rel, what, _codes(*accept)))

    add("empty.wav", b"", "zero-byte file", "EMPTY_FILE")
    add("garbage/random.wav", M.random_bytes(seed=1), "random bytes named .wav", "DECODE_FAILED")
    add("garbage/random.flac", M.random_bytes(seed=2), "random bytes named .flac", "DECODE_FAILED")
    add("garbage/random.mp4", M.random_bytes(seed=3), "random bytes named .mp4", "DECODE_FAILED")
    add("garbage/text.mp3", b"this is a text file, not audio\n" * 40, "text renamed .mp3", "DECODE_FAILED")
    add("wav/truncated.wav", M.truncated_wav(M.noise_wav_bytes(seconds=2.0)), "WAV truncated mid-data", OK)
    add("wav/lying_header.wav", M.wav_with_lying_header(), "WAV header claims 10x the data", OK)
    add("wav/short_0.05s.wav", M.sine_wav_bytes(seconds=0.05), "0.05 s clip", "TOO_SHORT")
    add("wav/silence.wav", M.wav_bytes(np.zeros(32000, np.float32), 16000), "pure digital silence", "SILENT")
    clipped = np.clip(M.noise(seconds=1.5, amp=3.0), -1.0, 1.0)
    add("wav/clipped.wav", M.wav_bytes(clipped, 16000), "hard-clipped audio", OK)
    add("wav/nan_inf.wav", M.float_wav_with_nan_inf(), "float WAV with NaN and Inf", "INVALID_AUDIO")
    add("wav/mulaw_8k.wav", M.mulaw_8k_wav(), "8 kHz mu-law WAV", OK)
    add("wav/six_channel.wav", M.multichannel_wav(6), "6-channel audio", OK)
    add("wav/hires_96k_24bit.wav", M.hires_wav(), "96 kHz 24-bit audio", OK)
    (root / "video").mkdir()
    M.write_video(root / "video/no_audio.mp4", audio=False, seconds=1.0)
    add("video/no_audio.mp4", None, "mp4 without an audio track", "NO_AUDIO_STREAM", OK, *VIDEO_LATER)
    M.write_video(root / "video/no_video.mp4", video=False, seconds=1.0)
    add("video/no_video.mp4", None, "mp4 without a video track", OK)
    M.write_video(root / "video/no_face.mp4", face=False, seconds=1.0)
    add("video/no_face.mp4", None, "video without a face", OK, *VIDEO_LATER)
    add("03-01-09-01-01-01-30.wav", M.noise_wav_bytes(seconds=1.0), "RAVDESS-like name, invalid codes", OK)
    awkward = ("with space.wav", "ünïcödé-😀.wav", "100%.wav", "%41%2F.wav", "a+b.wav", "#1.wav", "a..b.wav")
    for name in awkward:
        add(f"names/{name}", M.noise_wav_bytes(seconds=1.0, seed=len(name)), f"name {name!r}", OK)
    same = M.noise_wav_bytes(seconds=1.0, seed=7)
    add("dup/first.wav", same, "same content, name 1", OK)
    add("dup/second.wav", same, "same content, name 2", OK)
    add("loop/inside.wav", M.noise_wav_bytes(seconds=1.0, seed=8), "file inside a symlink loop", OK)
    (root / "loop" / "self").symlink_to(".", target_is_directory=True)
    (root / "loop" / "up").symlink_to("..", target_is_directory=True)
    (root / "dangling.wav").symlink_to(root / "does-not-exist.wav")
    cases.append(Case("dangling.wav", "dangling symlink", _codes("READ_FAILED")))
    (root / "long").mkdir()
    write_long_wav(root / "long/thirty_minutes.wav", 1800)
    cases.append(Case("long/thirty_minutes.wav", "30-minute file (8 kHz, 28.8 MB)", _codes(OK)))
    write_long_wav(root / "long/one_hour_u8.wav", 3600, sr=4000, subtype="PCM_U8")
    too_long = f"1 h file, over --max-duration-s {MAX_DURATION_S}"
    cases.append(Case("long/one_hour_u8.wav", too_long, _codes("TOO_LONG")))
    write_long_wav(root / "long/too_big.wav", 2700)  # 43.2 MB
    too_big = f"43 MB file, over --max-file-mb {MAX_FILE_MB}"
    cases.append(Case("long/too_big.wav", too_big, _codes("FILE_TOO_LARGE")))
    return cases


def read_back(output: str) -> list[dict]:
    from aei_batch.io.sinks import read_predictions

    return read_predictions(output).to_pylist()


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Any:
    """`aei-batch ARGS` in a subprocess (its own embedded Ray), output captured."""
    exe = Path(sys.executable).with_name("aei-batch")
    full_env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", **(env or {})}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout, env=full_env)


def markdown(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def publish_report(text: str, tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text(text + "\n")
    target = os.environ.get("AEI_ROBUSTNESS_REPORT")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(text + "\n\n")
    print("\n" + text)


def test_every_bad_input_gives_exactly_one_row(tmp_path: Path, trained_model: Path) -> None:
    root = tmp_path / "inputs"
    root.mkdir()
    cases = build_corpus(root)
    output = str(tmp_path / "table")
    proc = run_cli(
        "score",
        str(root),
        "-m",
        str(trained_model),
        "-o",
        output,
        "--runner",
        "ray",
        "--workers",
        "2",
        "--batch-size",
        "4",
        "--max-file-mb",
        str(MAX_FILE_MB),
        "--max-duration-s",
        str(MAX_DURATION_S),
        "--max-error-rate",
        "1.0",
        *LONG_FILE_WINDOWS,
        "--no-progress",
    )
    assert proc.returncode == ExitCode.OK, proc.stderr[-3000:]

    rows = read_back(output)
    by_uri = {r[COL.uri]: r for r in rows}
    assert len(by_uri) == len(rows), "duplicate rows for one uri"
    expected = {str((root / c.path).absolute()): c for c in cases}
    missing, extra = set(expected) - set(by_uri), set(by_uri) - set(expected)
    assert not missing and not extra, f"missing {missing}, extra {extra}"

    report, wrong = [], []
    for uri, case in sorted(expected.items(), key=lambda kv: kv[1].path):
        row = by_uri[uri]
        outcome = OK if row[COL.status] == STATUS_OK else row[COL.error_code]
        if outcome not in case.accept:
            wrong.append(f"{case.path}: got {outcome} ({row[COL.error_message]}), accepts {set(case.accept)}")
        if outcome != OK:
            assert outcome in {c.value for c in ErrorCode}
            assert row[COL.error_message] and len(row[COL.error_message]) > 10
        else:
            assert row[COL.predicted_emotion] and row[COL.duration_s] and row[COL.duration_s] > 0
        detail = (row[COL.error_message] or f"{row[COL.predicted_emotion]}, {row[COL.duration_s]:.2f} s")[:90]
        report.append(
            (
                case.what,
                f"`{case.path}`",
                row[COL.status],
                outcome if outcome != OK else "",
                detail.replace("|", "/"),
            )
        )
    publish_report(
        markdown(report, ("input", "file", "status", "error code", "message / result")),
        tmp_path,
        "bad_inputs.md",
    )
    assert not wrong, "\n".join(wrong)
    invalid = by_uri[str((root / "03-01-09-01-01-01-30.wav").absolute())]
    assert invalid[COL.label_emotion] is None and invalid[COL.actor] is None


def test_decode_timeout_gives_a_row_and_the_worker_goes_on(tmp_path: Path, trained_model: Path) -> None:
    """A decode over --decode-timeout-s becomes DECODE_TIMEOUT; the next file still scores (local runner)."""
    from typer.testing import CliRunner

    from aei_batch.cli import app

    root = tmp_path / "in"
    root.mkdir()
    write_long_wav(root / "a_slow.wav", 3600)  # decoding + resampling 1 h takes 1-2 s here: far over 0.4 s
    _write(root, "b_quick.wav", M.noise_wav_bytes(seconds=1.0))
    output = str(tmp_path / "table")
    args = [
        "score",
        str(root),
        "-m",
        str(trained_model),
        "-o",
        output,
        "--runner",
        "local",
        "--segments",
        "off",
        "--decode-timeout-s",
        "0.4",
        "--max-error-rate",
        "1",
        "--no-progress",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == ExitCode.OK, result.output
    rows = {Path(r[COL.uri]).name: r for r in read_back(output)}
    assert rows["a_slow.wav"][COL.error_code] == ErrorCode.DECODE_TIMEOUT
    assert "--decode-timeout-s" in rows["a_slow.wav"][COL.error_message]
    assert rows["b_quick.wav"][COL.status] == STATUS_OK
    table = [(n, r[COL.status], r[COL.error_code] or "") for n, r in sorted(rows.items())]
    header = ("file (--segments off --decode-timeout-s 0.4)", "status", "error code")
    publish_report(markdown(table, header), tmp_path, "timeout.md")


def test_error_share_over_max_error_rate_exits_3_and_still_commits(
    tmp_path: Path, trained_model: Path
) -> None:
    """--max-error-rate: the run commits every row, then exits 3 (ExitCode.ERROR_RATE) when over it."""
    from typer.testing import CliRunner

    from aei_batch.cli import app

    root = tmp_path / "in"
    root.mkdir()
    _write(root, "good1.wav", M.noise_wav_bytes(seconds=1.0, seed=1))
    _write(root, "good2.wav", M.noise_wav_bytes(seconds=1.0, seed=2))
    _write(root, "empty.wav", b"")
    outcomes = []
    for rate, expected in (("0.2", ExitCode.ERROR_RATE), ("0.5", ExitCode.OK)):
        output = str(tmp_path / f"table-{rate}")
        args = [
            "score",
            str(root),
            "-m",
            str(trained_model),
            "-o",
            output,
            "--runner",
            "local",
            "--max-error-rate",
            rate,
        ]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == expected, result.output
        rows = read_back(output)
        assert len(rows) == 3 and sum(r[COL.status] != STATUS_OK for r in rows) == 1
        outcomes.append(
            (f"1 error in 3 files, --max-error-rate {rate}", f"exit {result.exit_code}", "3 rows committed")
        )
    publish_report(markdown(outcomes, ("run", "exit code", "table")), tmp_path, "error_rate.md")
