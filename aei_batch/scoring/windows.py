"""Long recordings: fixed windows, an energy voice-activity gate, per-window scores and a per-file rollup.

A stream of `(channels, n)` chunks at the analysis rate (from `decode.stream.iter_audio_chunks`) is
cut into windows of `window_s` every `hop_s` with carry-over between chunks, so memory holds one
chunk plus one window whatever the file's length. Alongside, every channel's level is measured on a
fixed grid of 512-sample frames (23 ms). A frame is *voiced* when its level passes
`max(vad_floor_db, file_level_db - vad_rel_db)`, where the file level is the 95th percentile of the
channel's frames above the floor; a window is scored when its voiced share reaches
`min_speech_share`. Because the file level is only known at the end, windows with no frame above the
absolute floor are skipped at once (no features), the others are featurised and gated at the end.
All kept windows of a file go through the model in one `predict_proba8` call.

The rollup weights each window by its voiced seconds: the file's probabilities are the weighted mean,
`emotion_shares` the weighted share of windows whose top emotion is each label (with uniform
overlap that is the share of speech time), `dominant_emotion` the largest share. See docs/SEGMENTS.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from aei_batch.errors import ConfigError, ErrorCode, FileError
from aei_batch.records import EMOTIONS, N_CLASSES

SEGMENT_MODES = ("auto", "on", "off")
#: the segment options a --config mapping or the command line may set
SEGMENT_OPTIONS = (
    "window_s",
    "hop_s",
    "per_channel",
    "vad_floor_db",
    "vad_rel_db",
    "min_speech_share",
    "context_s",
    "join_gap_s",
    "denoise",
)
FRAME = 512  # samples per level frame at the analysis rate (23.2 ms at 22,050 Hz)
#: frames of a channel's noise floor lie within this many dB of the quietest (a steady noise's 512-sample
#: frames spread over about +-2 dB)
NOISE_SPREAD_DB = 6.0
#: at most this much of a window's surroundings is measured for its noise (the nearest non-speech first)
NOISE_MAX_S = 1.0
_EPS_DB = -120.0


@dataclass(frozen=True)
class SegmentConfig:
    """How files are segmented. `mode`: off (one clip per file), on (every file), auto (long files only)."""

    mode: str = "off"
    window_s: float = 3.0
    hop_s: float = 1.5
    per_channel: bool = False
    vad_floor_db: float = -55.0
    vad_rel_db: float = 35.0
    min_speech_share: float = 0.4
    auto_min_s: float | None = None  # auto segments files longer than this (default: two windows)
    trim: bool = True  # featurise a window's voiced span (edges below the gate cut off), not its pauses
    chunk_s: float = 20.0
    #: a window is featurised on the whole stretch of speech under it, up to this many seconds either side
    #: of the window (0: the window's own voiced span only, as before 2026-11-30)
    context_s: float = 1.5
    #: voiced frames closer than this are one stretch of speech (pauses between words are shorter)
    join_gap_s: float = 0.8
    #: a window's spectrum is cleaned of its channel's noise, measured on the non-speech frames around it
    #: (feature sets that take a noise spectrum; False: as before issue 15 round 6, 2026-11-30)
    denoise: bool = True

    def __post_init__(self) -> None:
        if self.mode not in SEGMENT_MODES:
            raise ConfigError(f"unknown --segments {self.mode!r}", hint="use --segments auto, on or off")
        if not 0.5 <= self.window_s <= 60:
            raise ConfigError(f"--window-s must be between 0.5 and 60 seconds, got {self.window_s}")
        if not 0 < self.hop_s <= self.window_s:
            raise ConfigError(
                f"--hop-s must be positive and at most --window-s ({self.window_s}), got {self.hop_s}"
            )
        if not 0.0 <= self.min_speech_share <= 1.0:
            raise ConfigError(f"--min-speech-share must be between 0 and 1, got {self.min_speech_share}")
        if self.vad_rel_db <= 0 or self.vad_floor_db >= 0:
            raise ConfigError(
                "--vad-rel-db must be positive and --vad-floor-db negative (dBFS)",
                hint="e.g. --vad-rel-db 35 --vad-floor-db -55",
            )
        if not 0.0 <= self.context_s <= 30.0:
            raise ConfigError(f"--context-s must be between 0 and 30 seconds, got {self.context_s}")
        if not 0.0 < self.join_gap_s <= 5.0:
            raise ConfigError(f"join_gap_s must be above 0 and at most 5 seconds, got {self.join_gap_s}")
        if self.chunk_s < self.window_s:
            raise ConfigError(f"the decode chunk ({self.chunk_s} s) must hold a window ({self.window_s} s)")

    @property
    def auto_threshold_s(self) -> float:
        return self.auto_min_s if self.auto_min_s is not None else 2 * self.window_s

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any] | None) -> SegmentConfig:
        return SegmentConfig(**(d or {}))


def segment_config(config: dict[str, Any], **cli: Any) -> SegmentConfig:
    """Command-line values (None = not given) over a --config mapping (`segments: on`, `window_s: 4`, ...)."""
    values: dict[str, Any] = {"mode": config.get("segments", "auto")}
    for name in SEGMENT_OPTIONS:
        if name in config:
            values[name] = config[name]
    values.update({k: v for k, v in cli.items() if v is not None})
    return SegmentConfig(**values)


# --------------------------------------------------------------------------- streaming pieces


def frame_levels_db(y: np.ndarray) -> np.ndarray:
    """(channels, n) -> (channels, n // FRAME) frame RMS levels in dBFS (incomplete tail frame dropped)."""
    n = (y.shape[1] // FRAME) * FRAME
    frames = y[:, :n].reshape(y.shape[0], -1, FRAME).astype(np.float64)
    rms = np.sqrt((frames**2).mean(axis=2))
    return np.maximum(20 * np.log10(rms + 1e-12), _EPS_DB).astype(np.float32)


class FrameMeter:
    """Frame levels over a stream of chunks on a global grid (frame i: samples i*FRAME to (i+1)*FRAME)."""

    def __init__(self, channels: int) -> None:
        self._carry = np.zeros((channels, 0), dtype=np.float32)
        self._parts: list[np.ndarray] = []

    def push(self, chunk: np.ndarray) -> None:
        y = np.concatenate([self._carry, chunk], axis=1) if self._carry.shape[1] else chunk
        done = (y.shape[1] // FRAME) * FRAME
        if done:
            self._parts.append(frame_levels_db(y[:, :done]))
        self._carry = y[:, done:].copy()

    def finish(self) -> None:
        if self._carry.shape[1] >= FRAME // 2:  # a last partial frame long enough to measure
            pad = np.zeros((self._carry.shape[0], FRAME - self._carry.shape[1]), dtype=np.float32)
            tail = np.concatenate([self._carry, pad], axis=1)
            self._parts.append(frame_levels_db(tail) + 10 * np.log10(FRAME / self._carry.shape[1]))
        self._carry = self._carry[:, :0]

    @property
    def levels(self) -> np.ndarray:
        """(channels, frames) dBFS so far."""
        if not self._parts:
            return np.zeros((self._carry.shape[0], 0), dtype=np.float32)
        if len(self._parts) > 1:
            self._parts = [np.concatenate(self._parts, axis=1)]
        return self._parts[0]


class Windower:
    """Cut a stream of (channels, n) chunks into (start, window) pairs with carry-over between chunks.

    Windows start every `hop` samples and last `win`; after the stream, an uncovered tail longer than
    `min_tail` gets one last window aligned to the end, and a stream shorter than one window gives one
    window spanning all of it (a short clip keeps one segment).
    """

    def __init__(self, win: int, hop: int, min_tail: int) -> None:
        self.win, self.hop, self.min_tail = win, hop, min_tail
        self._buf: np.ndarray | None = None
        self._buf_start = 0  # absolute sample index of _buf[:, 0]
        self._next = 0  # absolute start of the next window
        self._last_end = 0
        self.total = 0

    @property
    def next_start(self) -> int:
        """Absolute start of the next full window."""
        return self._next

    def push(self, chunk: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        self._buf = (
            chunk
            if self._buf is None or not self._buf.shape[1]
            else np.concatenate([self._buf, chunk], axis=1)
        )
        self.total += chunk.shape[1]
        while self._next + self.win <= self.total:
            a = self._next - self._buf_start
            yield self._next, self._buf[:, a : a + self.win]
            self._last_end = self._next + self.win
            self._next += self.hop
        # Keep what the next window needs, and the last `win` samples for an end-aligned tail window.
        keep_from = min(self._next, max(0, self.total - self.win)) - self._buf_start
        self._buf = self._buf[:, keep_from:].copy()
        self._buf_start += keep_from

    def finish(self) -> Iterator[tuple[int, np.ndarray]]:
        if self._buf is None:
            return
        if self._last_end == 0 and self.total > 0:  # shorter than one window: one segment for all of it
            yield 0, self._buf[:, : self.total]
        elif self.total - self._last_end >= self.min_tail:
            # The buffer starts at the next hop; the end-aligned window may reach back before it.
            start = max(0, self.total - self.win)
            if start >= self._buf_start:
                yield start, self._buf[:, start - self._buf_start :]


# --------------------------------------------------------------------------- one file


@dataclass
class Window:
    """One window of one channel: sample span, features (None when skipped at once) and its voiced share."""

    channel: int
    start: int
    end: int
    vec: np.ndarray | None
    speech_share: float = 0.0


@dataclass
class FileWindows:
    """Everything the stream left for one file: windows (all channels), frame levels, length."""

    windows: list[Window]
    levels: np.ndarray  # (channels, frames) dBFS
    total: int  # samples per channel
    sr: int
    channel_speech: list[float] = field(default_factory=list)  # voiced share of each channel's frames

    @property
    def duration_s(self) -> float:
        return self.total / float(self.sr)


def featurise_stream(chunks: Iterable[np.ndarray], extract: Any, sr: int, cfg: SegmentConfig) -> FileWindows:
    """Window a chunk stream, featurise windows that have any frame above the floor, keep frame levels.

    `extract(y, sr) -> vector` is the model's feature set (a `FeatureSet`, or any such function). With
    `cfg.denoise` and a set that takes a noise spectrum, each window's spectrum is cleaned of its
    channel's noise, measured on the frames under the voice gate around it (`_noise_around`; within
    `cfg.context_s` of its edges, or within the window itself when that is 0). A window is featurised
    once the stream has passed `cfg.context_s` beyond its end (the stretch of speech under it may go on
    past its edges), so memory holds one chunk plus one window and its context. Feature failures raise
    FileError(FEATURE_FAILED).
    """
    win, hop = round(cfg.window_s * sr), round(cfg.hop_s * sr)
    ctx = round(cfg.context_s * sr)
    windower: Windower | None = None
    meter: FrameMeter | None = None
    history: _History | None = None
    pending: list[tuple[int, int]] = []  # windows cut, waiting for their context
    windows: list[Window] = []

    def flush(final: bool) -> None:
        assert windower is not None and meter is not None and history is not None
        gate = voice_thresholds(meter.levels, cfg)  # the file's level so far: used to trim windows
        while pending and (final or pending[0][1] + ctx <= windower.total):
            start, end = pending.pop(0)
            windows.extend(_featurise_window(start, end, history, meter.levels, gate, extract, sr, cfg))

    for chunk in chunks:
        if windower is None or meter is None or history is None:
            windower, meter = Windower(win, hop, min_tail=max(FRAME, hop // 2)), FrameMeter(chunk.shape[0])
            history = _History()
        meter.push(chunk)
        history.push(chunk)
        pending.extend((start, start + y.shape[1]) for start, y in windower.push(chunk))
        flush(final=False)
        # keep what pending windows, the next window and an end-aligned tail window need, with context
        oldest = min([windower.next_start, windower.total - win] + [a for a, _ in pending])
        history.drop_before(oldest - ctx)
    if windower is None or meter is None or history is None:
        raise FileError(ErrorCode.TOO_SHORT, "the audio stream holds no samples")
    meter.finish()
    pending.extend((start, start + y.shape[1]) for start, y in windower.finish())
    flush(final=True)
    return FileWindows(windows, meter.levels, windower.total, sr)


class _History:
    """The last samples of a stream (all channels), addressed by absolute sample index."""

    def __init__(self) -> None:
        self._buf: np.ndarray | None = None
        self.start = 0  # absolute index of _buf[:, 0]

    def push(self, chunk: np.ndarray) -> None:
        self._buf = chunk if self._buf is None else np.concatenate([self._buf, chunk], axis=1)

    def drop_before(self, index: int) -> None:
        assert self._buf is not None
        cut = min(max(0, index - self.start), self._buf.shape[1])
        if cut:
            self._buf = self._buf[:, cut:].copy()
            self.start += cut

    @property
    def end(self) -> int:
        return self.start + (0 if self._buf is None else self._buf.shape[1])

    def samples(self, ch: int, a: int, b: int) -> np.ndarray:
        assert self._buf is not None and self.start <= a <= b <= self.end, (a, b, self.start, self.end)
        return np.ascontiguousarray(self._buf[ch, a - self.start : b - self.start])


def _frame_span(start: int, end: int, n_frames: int) -> slice:
    a = start // FRAME
    b = max(a + 1, -(-end // FRAME))  # frames overlapping [start, end)
    return slice(min(a, n_frames), min(b, n_frames))


def voice_thresholds(levels: np.ndarray, cfg: SegmentConfig) -> np.ndarray:
    """Per channel: the level (dBFS) a frame needs to count as voiced, from the channel's frames so far."""
    out = np.full(levels.shape[0], cfg.vad_floor_db, dtype=np.float64)
    for ch in range(levels.shape[0]):
        loud = levels[ch][levels[ch] >= cfg.vad_floor_db]
        if loud.size:
            out[ch] = max(cfg.vad_floor_db, float(np.percentile(loud, 95)) - cfg.vad_rel_db)
    return out


def _voiced_span(start: int, n: int, span: slice, lv: np.ndarray, threshold: float, sr: int) -> slice:
    """Samples of the window from its first to its last voiced frame (all of it when that is under 0.5 s)."""
    idx = np.flatnonzero(lv >= threshold)
    if idx.size == 0:
        return slice(0, n)
    a = max(0, (span.start + int(idx[0])) * FRAME - start)
    b = min(n, (span.start + int(idx[-1]) + 1) * FRAME - start)
    if idx[-1] == lv.size - 1:  # voiced up to the newest measured frame: keep the (unmeasured) rest too
        b = n
    return slice(a, b) if b - a >= sr // 2 else slice(0, n)


def _speech_stretch(
    start: int, end: int, lo: int, hi: int, levels: np.ndarray, threshold: float, sr: int, cfg: SegmentConfig
) -> tuple[int, int] | None:
    """Absolute samples of the stretch of speech under the window [start, end): voiced frames of
    [lo, hi) (the window and its context) joined across pauses shorter than `cfg.join_gap_s`, the run
    with the most voiced frames inside the window, whole within [lo, hi) but never longer than the window
    (a longer run is cut to the window's length around the window's part of it, so a window costs no more
    features than before). None when there is no such run of 0.5 s or more (the caller then trims the
    window to its own voiced span)."""
    span = _frame_span(lo, hi, levels.shape[0])
    idx = np.flatnonzero(levels[span] >= threshold) + span.start  # absolute frame indices
    inside = (idx >= start // FRAME) & (idx < -(-end // FRAME))
    if not inside.any():
        return None
    starts = np.zeros(idx.size, dtype=np.int64)
    starts[1:] = np.diff(idx) > cfg.join_gap_s * sr / FRAME  # a pause long enough starts a new run
    run = np.cumsum(starts)  # run id of each voiced frame
    best = int(np.argmax(np.bincount(run[inside], minlength=int(run[-1]) + 1)))
    frames = idx[run == best]
    a = max(lo, int(frames[0]) * FRAME)
    b = hi if frames[-1] == levels.shape[0] - 1 else min(hi, (int(frames[-1]) + 1) * FRAME)
    if b - a > end - start:  # never longer than the window: centred on the window's part of the stretch
        mid = (max(a, start) + min(b, end)) // 2
        a = min(max(mid - (end - start) // 2, a), b - (end - start))
        b = a + (end - start)
    return (a, b) if b - a >= sr // 2 else None


def noise_runs(lv: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Runs [a, b) of at least two frames of a channel's noise floor, among frame levels `lv` (dBFS): frames
    under the voice gate `threshold` (digital silence left out) that lie within NOISE_SPREAD_DB of the
    quietest of them (their 10th percentile)."""
    quiet = (lv < threshold) & (lv > _EPS_DB)
    if not quiet.any():
        return []
    # a noise floor is steady: its frames lie within NOISE_SPREAD_DB of the quietest; the fade of a word
    # (under the gate, but above the floor) is speech, not noise
    quiet &= lv <= np.percentile(lv[quiet], 10) + NOISE_SPREAD_DB
    from aei_batch.features.dsp import true_runs

    starts, ends = true_runs(quiet)
    return [(a, b) for a, b in zip(starts.tolist(), ends.tolist(), strict=True) if b - a >= 2]


def _noise_around(
    ch: int,
    start: int,
    end: int,
    ctx: int,
    history: _History,
    levels: np.ndarray,
    threshold: float,
    extract: Any,
    sr: int,
    cfg: SegmentConfig,
) -> np.ndarray | None:
    """The noise spectrum of channel `ch` around the window [start, end): from its `noise_runs` (under the
    voice gate `threshold`) within `ctx` samples of either edge, the runs nearest the window first and
    NOISE_MAX_S of them at most, as the feature set measures it (`noise_profile`). None when `cfg.denoise`
    is off, the set takes no noise spectrum, or there is too little non-speech around the window."""
    profile = getattr(extract, "noise_profile", None)
    if not cfg.denoise or profile is None:
        return None
    first = -(-max(history.start, start - ctx) // FRAME)  # whole frames still in the history
    last = min(history.end, end + ctx) // FRAME
    lv = levels[first : max(first, min(last, levels.shape[0]))]
    runs = [(first + a, first + b) for a, b in noise_runs(lv, threshold)]
    # the runs nearest the window first, up to NOISE_MAX_S: a window's cost stays bounded in long pauses
    centre = (start + end) // 2 // FRAME
    budget = round(NOISE_MAX_S * sr) // FRAME
    pieces = []
    for a, b in sorted(runs, key=lambda r: max(r[0] - centre, centre - r[1], 0)):
        take = min(b - a, budget)
        if take < 2:
            break
        a, b = (a, a + take) if a >= centre else (b - take, b)  # the part nearest the window
        pieces.append(history.samples(ch, a * FRAME, b * FRAME))
        budget -= take
    return profile(pieces, sr) if pieces else None  # type: ignore[no-any-return]


def _featurise_window(
    start: int,
    end: int,
    history: _History,
    levels: np.ndarray,
    gate: np.ndarray,
    extract: Any,
    sr: int,
    cfg: SegmentConfig,
) -> list[Window]:
    out = []
    span = _frame_span(start, end, levels.shape[1])
    ctx = round(cfg.context_s * sr)
    for ch in range(levels.shape[0]):
        lv = levels[ch, span]
        vec = None
        if lv.size == 0 or float(lv.max()) >= cfg.vad_floor_db:
            a, b = start, end
            if cfg.trim:
                stretch = None
                if ctx:
                    lo, hi = max(history.start, start - ctx), min(history.end, end + ctx)
                    stretch = _speech_stretch(start, end, lo, hi, levels[ch], gate[ch], sr, cfg)
                if stretch is None:
                    part = _voiced_span(start, end - start, span, lv, gate[ch], sr)
                    stretch = (start + part.start, start + part.stop)
                a, b = stretch
            try:
                noise = _noise_around(ch, start, end, ctx, history, levels[ch], gate[ch], extract, sr, cfg)
                y = history.samples(ch, a, b)
                vec = extract(y, sr) if noise is None else extract(y, sr, noise=noise)
            except Exception as exc:  # noqa: BLE001
                raise FileError(ErrorCode.FEATURE_FAILED, f"window at {start / sr:.1f} s: {exc}") from None
            if not np.isfinite(vec).all():
                raise FileError(
                    ErrorCode.FEATURE_FAILED, f"window at {start / sr:.1f} s: non-finite features"
                )
        out.append(Window(ch, start, end, vec))
    return out


def apply_vad(fw: FileWindows, cfg: SegmentConfig) -> list[Window]:
    """Set each window's voiced share from its channel's frames; return the windows that pass the gate."""
    voiced = fw.levels >= voice_thresholds(fw.levels, cfg)[:, None]
    fw.channel_speech = [float(v.mean()) if v.size else 0.0 for v in voiced]
    kept = []
    for w in fw.windows:
        frames = voiced[w.channel, _frame_span(w.start, w.end, voiced.shape[1])]
        w.speech_share = float(frames.mean()) if frames.size else 0.0
        if w.vec is not None and w.speech_share >= cfg.min_speech_share and w.speech_share > 0:
            kept.append(w)
    return kept


# --------------------------------------------------------------------------- rollup


@dataclass(frozen=True)
class Rollup:
    """A file's summary over its scored windows."""

    proba: np.ndarray  # (8,) weighted mean
    shares: dict[str, float]  # emotion -> share of speech time (all eight, summing to 1)
    dominant: str
    n_segments: int

    def shares_json(self) -> str:
        return json.dumps({e: round(v, 6) for e, v in self.shares.items()})


def rollup(proba: np.ndarray, weights: np.ndarray) -> Rollup:
    """Weighted mean probabilities, and the weighted share of windows per top emotion."""
    if proba.ndim != 2 or proba.shape[1] != N_CLASSES or len(proba) != len(weights) or not len(proba):
        raise ValueError(f"rollup needs (n, {N_CLASSES}) probabilities and n weights, got {proba.shape}")
    w = np.asarray(weights, dtype=np.float64)
    w = w if w.sum() > 0 else np.ones_like(w)
    mean = (proba * w[:, None]).sum(axis=0) / w.sum()
    top = proba.argmax(axis=1)
    share = np.bincount(top, weights=w, minlength=N_CLASSES) / w.sum()
    shares = {e: float(s) for e, s in zip(EMOTIONS, share, strict=True)}
    return Rollup(mean, shares, EMOTIONS[int(share.argmax())], len(proba))


# --------------------------------------------------------------------------- video hook


def group_by_window(times_s: np.ndarray, probs: np.ndarray, spans_s: list[tuple[float, float]]) -> np.ndarray:
    """Mean per-frame probabilities (n_frames, 8) of the frames whose time falls in each window span.

    Returns (n_windows, 8); a window without frames gets NaN (no face seen). For video files: call
    with the sampled frames' presentation times and the face model's per-frame probabilities, then
    fuse with the audio windows of the same spans (see docs/SEGMENTS.md, "Video").
    """
    times = np.asarray(times_s, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64).reshape(len(times), -1)
    out = np.full((len(spans_s), p.shape[1]), np.nan)
    for k, (a, b) in enumerate(spans_s):
        sel = (times >= a) & (times < b)
        if sel.any():
            out[k] = p[sel].mean(axis=0)
    return out


# --------------------------------------------------------------------------- the per-file scorer


#: Extra watchdog time per second of audio for a segmented file (decode + features of every window).
TIMEOUT_S_PER_AUDIO_S = 0.1
#: S3 objects up to this size are read into memory once (probed, then decoded from the bytes); larger ones
#: are spooled to a temporary file. Local files are always probed and decoded from their path.
SPOOL_MIN_BYTES = 16 << 20


def featurise_file(
    src: str | bytes, name: str, feature_set: str, cfg: dict[str, Any], max_duration_s: float | None
) -> FileWindows:
    """Stream-decode `src` and featurise its windows (module-level: the decode watchdog can run it)."""
    from threadpoolctl import threadpool_limits

    conf = SegmentConfig.from_dict(cfg)
    # A worker is one core. Multi-threaded BLAS on the small per-window matrix products (the mel filter
    # bank) only fights the other workers: on two busy cores it made a window 50x slower (bench notes).
    with threadpool_limits(limits=1):
        return _featurise_file(src, name, conf, feature_set, max_duration_s)


def _featurise_file(
    src: str | bytes, name: str, conf: SegmentConfig, feature_set: str, max_duration_s: float | None
) -> FileWindows:
    from aei_batch.decode.audio import ANALYSIS_SR
    from aei_batch.decode.stream import iter_audio_chunks
    from aei_batch.features import get_feature_set

    chunks = iter_audio_chunks(
        src,
        name,
        chunk_s=conf.chunk_s,
        sr=ANALYSIS_SR,
        per_channel=conf.per_channel,
        max_duration_s=max_duration_s,
    )
    return featurise_stream(chunks, get_feature_set(feature_set), ANALYSIS_SR, conf)


@dataclass(frozen=True)
class ShortFile:
    """`--segments auto` found a short file: the router scores it as one clip (with its bytes when read)."""

    data: bytes | None = None


@dataclass
class WindowedFile:
    """A long recording between the window scorer and the model: its kept windows and their groups."""

    fw: FileWindows
    kept: list[Window]
    per_channel: bool

    @property
    def X(self) -> np.ndarray:
        return np.stack([w.vec for w in self.kept if w.vec is not None])

    @property
    def groups(self) -> list[str]:
        """The speaker group of each kept window: its channel (a call's side is one speaker), or the whole
        mixed-down file. The speaker transform normalises each group with its own statistics."""
        return [f"ch{w.channel}" if self.per_channel else "file" for w in self.kept]

    @property
    def weights(self) -> np.ndarray:
        return np.array([w.speech_share * (w.end - w.start) / self.fw.sr for w in self.kept])


class WindowScorer:
    """Long recordings, window by window (docs/SEGMENTS.md). `prepare` decodes and featurises a file's
    windows in the decoder child; `finish` turns the windows' probabilities into the file's rollup and its
    segment rows."""

    def __init__(self, ctx: Any, feature_set: str, featuriser: Any) -> None:
        self.ctx = ctx
        self.feature_set = feature_set
        self.cfg = SegmentConfig.from_dict(ctx.options.get("segments"))
        self.featuriser = featuriser  # the worker's ClipFeaturiser: its decoder child runs the windows too

    @property
    def enabled(self) -> bool:
        return self.cfg.mode != "off"

    def prepare(self, ref: dict[str, Any], row: dict[str, Any]) -> WindowedFile | ShortFile:
        """Decode and featurise a long file's windows (voice gate applied), or ShortFile for a short one."""
        from aei_batch.decode.audio import MIN_DURATION_S
        from aei_batch.decode.stream import probe
        from aei_batch.records import COL

        with self._source(ref) as src:
            facts = probe(src, ref["uri"])
            if self.cfg.mode == "auto" and (
                facts is None or facts.duration_s is None or facts.duration_s <= self.cfg.auto_threshold_s
            ):
                return ShortFile(src if isinstance(src, bytes) else None)
            fw = self._featurise(src, ref["uri"], facts.duration_s if facts else None)
        if fw.duration_s < MIN_DURATION_S:
            raise FileError(
                ErrorCode.TOO_SHORT,
                f"audio lasts {fw.duration_s:.3f} s, under the minimum of {MIN_DURATION_S} s",
            )
        kept = apply_vad(fw, self.cfg)
        row[COL.duration_s] = fw.duration_s
        if not kept:
            raise FileError(
                ErrorCode.TOO_SHORT,
                f"no speech: none of {len(fw.windows)} windows passed the voice "
                f"gate (--vad-floor-db {self.cfg.vad_floor_db:g}, --vad-rel-db "
                f"{self.cfg.vad_rel_db:g}, --min-speech-share {self.cfg.min_speech_share:g})",
            )
        return WindowedFile(fw, kept, self.cfg.per_channel)

    def _featurise(self, src: str | bytes, name: str, duration_s: float | None) -> FileWindows:
        args = (src, name, self.feature_set, self.cfg.as_dict(), self.ctx.max_duration_s)
        wd = self.featuriser.decoder
        if not wd.timeout_s:
            return featurise_file(*args)
        base = wd.timeout_s
        wd.timeout_s = base + TIMEOUT_S_PER_AUDIO_S * (duration_s or self.ctx.max_duration_s or 3600.0)
        try:
            return wd.call(featurise_file, *args)  # type: ignore[no-any-return]
        finally:
            wd.timeout_s = base

    def _source(self, ref: dict[str, Any]) -> Any:
        """A context manager giving a local path (a temporary spool file for remote objects over
        SPOOL_MIN_BYTES), or the bytes of a smaller remote object (read once: probed, then decoded from
        memory). A local file is probed from its header here and read by the decoder child alone."""
        import contextlib

        from aei_batch.io import storage
        from aei_batch.scoring.inputs import check_listed_size, fetch

        check_listed_size(ref, self.ctx)
        size = ref.get("size")
        if storage.as_local_path(ref["uri"]) is None and size is not None and size <= SPOOL_MIN_BYTES:
            return contextlib.nullcontext(fetch(ref, self.ctx))
        # a local file is checked now (READ_FAILED, NOT_REGULAR_FILE) and read by the decoder child;
        # a remote one is spooled; errors come classified (FileError rows, AeiError for the store)
        return storage.open_source(ref["uri"], max_bytes=self.ctx.max_file_bytes)

    def finish(
        self, wf: WindowedFile, proba: np.ndarray, ref: dict[str, Any], row: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Fill `row` with the windows' rollup; return the file's segment rows (model columns from `row`)."""
        from aei_batch.records import COL
        from aei_batch.scoring.rows import fill_prediction

        r = rollup(proba, wf.weights)
        fill_prediction(row, r.proba, "audio")
        row.update(
            {
                COL.n_segments: r.n_segments,
                COL.speech_share: float(np.mean(wf.fw.channel_speech)),
                COL.dominant_emotion: r.dominant,
                COL.emotion_shares: r.shares_json(),
            }
        )
        mixed = not self.cfg.per_channel
        return [
            _segment_row(ref, row, k, w, p, wf.fw.sr, mixed)
            for k, (w, p) in enumerate(zip(wf.kept, proba, strict=True))
        ]


def _segment_row(
    ref: dict[str, Any], file_row: dict[str, Any], k: int, w: Window, p: np.ndarray, sr: int, mixed: bool
) -> dict[str, Any]:
    from aei_batch.records import COL, PROB_COLUMNS, SEG

    top = int(np.argmax(p))
    row: dict[str, Any] = {
        COL.uri: ref["uri"],
        COL.etag: ref.get("etag"),
        SEG.channel: None if mixed else w.channel,
        SEG.segment_index: k,
        SEG.start_s: w.start / sr,
        SEG.end_s: w.end / sr,
        SEG.modality: "audio",
        SEG.top_emotion: EMOTIONS[top],
        SEG.top_confidence: float(p[top]),
        SEG.speech_share: w.speech_share,
    }
    for c in (COL.model_name, COL.model_version, COL.feature_set, COL.run_id, COL.run_date, COL.scored_at):
        row[c] = file_row[c]
    row.update({c: float(v) for c, v in zip(PROB_COLUMNS, p, strict=True)})
    return row
