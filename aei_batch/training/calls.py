"""Generated calls for evaluation: a speaker's labelled clips joined with pauses, and window agreement.

A call-centre recording is long and made of turns and pauses; `score` cuts it into windows
(scoring/windows.py). To measure that path on labelled data, `build_call` joins one speaker's clips with
1-2 s pauses of faint noise (seeded) and remembers where each clip's speech lies; `window_agreement` then
compares the windows `score` wrote (the segments table) with the clip under each window's centre.

A clip's *speech span* runs from its first to its last 512-sample frame within 35 dB of its loudest frame
(RAVDESS files start and end with silence). A window whose centre falls in no clip's speech span (a pause,
or a clip's leading or trailing silence) is left out of the share: its right answer is unknown.
Used by `aei-batch evaluate` (training/evaluate.py) and bench/eval_call_windows.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PAUSE_S = (1.0, 2.0)  # a pause before each clip lasts uniformly 1-2 s
TAIL_PAUSE_S = 1.5
NOISE_DBFS = -65.0  # a faint floor under the pauses (the voice gate's absolute floor is -55 dBFS)
SPEECH_REL_DB = 35.0  # a clip's speech: frames within this of its loudest (the voice gate's --vad-rel-db)
FRAME = 512


@dataclass(frozen=True)
class Span:
    """Where one clip's speech lies in a call (seconds) and its label."""

    emotion: str
    start_s: float
    end_s: float


def speech_span(y: np.ndarray, rel_db: float = SPEECH_REL_DB) -> tuple[int, int]:
    """First and last sample of the frames within `rel_db` of the clip's loudest 512-sample frame."""
    n = len(y) // FRAME
    if n == 0:
        return 0, len(y)
    frames = np.asarray(y[: n * FRAME], dtype=np.float64).reshape(n, FRAME)
    lv = 10 * np.log10((frames**2).mean(axis=1) + 1e-12)
    idx = np.flatnonzero(lv >= lv.max() - rel_db)
    return int(idx[0] * FRAME), int((idx[-1] + 1) * FRAME)


def build_call(
    clips: list[tuple[str, np.ndarray]], sr: int, seed: int, channels: list[int] | None = None
) -> tuple[np.ndarray, dict[int, list[Span]]]:
    """(emotion, samples at `sr`) clips in order, each after a 1-2 s pause, and a last 1.5 s pause; faint
    noise under everything. `channels[i]` puts clip i on that channel of a multi-channel call, the other
    channels silent meanwhile (turn taking); None: a mono call. Returns the (channels, n) samples and each
    channel's speech spans. Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    chans = channels if channels is not None else [0] * len(clips)
    n_ch = max(chans, default=0) + 1
    gaps = [int(rng.uniform(*PAUSE_S) * sr) for _ in clips]
    total = sum(gaps) + sum(len(y) for _, y in clips) + int(TAIL_PAUSE_S * sr)
    audio = (10 ** (NOISE_DBFS / 20) * rng.standard_normal((n_ch, total))).astype(np.float32)
    spans: dict[int, list[Span]] = {c: [] for c in range(n_ch)}
    pos = 0
    for (emotion, y), gap, ch in zip(clips, gaps, chans, strict=True):
        pos += gap
        audio[ch, pos : pos + len(y)] += np.asarray(y, dtype=np.float32)
        a, b = speech_span(y)
        spans[ch].append(Span(emotion, (pos + a) / sr, (pos + b) / sr))
        pos += len(y)
    return audio, spans


def turns(a: list[Any], b: list[Any]) -> tuple[list[Any], list[int]]:
    """Two speakers' clips taking turns (a, b, a, b, ...; the longer list's rest at the end) and the channel
    of each: 0 for `a`, 1 for `b`."""
    out: list[Any] = []
    chans: list[int] = []
    for i in range(max(len(a), len(b))):
        for c, side in enumerate((a, b)):
            if i < len(side):
                out.append(side[i])
                chans.append(c)
    return out, chans


def label_at(spans: Iterable[Span], t: float) -> str | None:
    """The emotion of the clip whose speech span holds time `t`, or None (a pause)."""
    return next((s.emotion for s in spans if s.start_s <= t < s.end_s), None)


def window_agreement(
    segments: Iterable[Mapping[str, Any]], truth: Mapping[tuple[str, int], list[Span]]
) -> dict[str, Any]:
    """Share of windows whose top emotion is the emotion of the clip under the window's centre.

    `segments`: segment rows (`uri`, `channel` (None = mixed down), `start_s`, `end_s`, `top_emotion`);
    `truth`: (file name, channel) -> spans. Windows centred outside every span are counted apart
    (`n_excluded`); files without truth are ignored.
    """
    from aei_batch.records import EMOTIONS, PROB_COLUMNS
    from aei_batch.training.metrics import expected_calibration_error

    n = hit = excluded = 0
    probs: list[list[float]] = []
    labels: list[int] = []
    for s in segments:
        spans = truth.get((str(s["uri"]).rstrip("/").rsplit("/", 1)[-1], int(s.get("channel") or 0)))
        if spans is None:
            continue
        under = label_at(spans, (float(s["start_s"]) + float(s["end_s"])) / 2)
        if under is None:
            excluded += 1
            continue
        n += 1
        hit += under == s["top_emotion"]
        if all(s.get(c) is not None for c in PROB_COLUMNS):
            probs.append([float(s[c]) for c in PROB_COLUMNS])
            labels.append(EMOTIONS.index(under))
    return {
        "n_windows": n + excluded,
        "n_counted": n,
        "n_excluded": excluded,
        "share": hit / n if n else float("nan"),
        # calibration of the counted windows' probabilities (None without probability columns)
        "ece": expected_calibration_error(np.asarray(probs), np.asarray(labels)) if probs else None,
    }


# --------------------------------------------------------------------------- evaluate: calls through `score`

#: generated call formats: name -> (sample rate written, short label, description)
CALL_FORMATS = {
    "mono16k": (16_000, "16 kHz mono", "16 kHz mono, one speaker"),
    "stereo8k": (
        8_000,
        "8 kHz stereo",
        "8 kHz stereo telephone (300-3,400 Hz, mu-law), two speakers taking turns, one per channel",
    ),
}
CALL_RATE = 16_000  # calls are built at this rate; the 8 kHz telephone ones are made from them


def _clips_by_actor(data: Any, clips_per_call: int, seed: int) -> dict[int, list[tuple[str, np.ndarray]]]:
    """Up to `clips_per_call` of each actor's files (seeded choice), decoded at 16 kHz, with their labels."""
    from aei_batch.decode.audio import decode_audio
    from aei_batch.errors import FileError
    from aei_batch.io import storage
    from aei_batch.records import EMOTIONS

    out: dict[int, list[tuple[str, np.ndarray]]] = {}
    for actor in sorted(int(a) for a in np.unique(data.actors)):
        rows = np.flatnonzero(data.actors == actor)
        rng = np.random.default_rng(seed * 1_000 + actor)
        chosen = rng.choice(rows, size=min(clips_per_call, len(rows)), replace=False)
        clips = []
        for i in chosen:
            try:
                y = decode_audio(storage.read_bytes(data.uris[i]), data.uris[i], sr=CALL_RATE).y
            except FileError:
                continue
            clips.append((EMOTIONS[int(data.y[i])], y))
        if clips:
            out[actor] = clips
    return out


def write_calls(
    folder: Path, data: Any, *, clips_per_call: int = 12, seed: int = 0
) -> dict[tuple[str, int], list[Span]]:
    """Write one 16 kHz mono call per actor of `data` and one 8 kHz stereo telephone call per actor (that
    actor on channel 0, the next actor in order on channel 1, taking turns; with a single actor, its clips
    in reverse order on channel 1). Returns (file name, channel) -> speech spans."""
    import soundfile as sf

    from aei_batch.features.augment import TEL_SR, telephone_8k

    folder.mkdir(parents=True, exist_ok=True)
    clips = _clips_by_actor(data, clips_per_call, seed)
    actors = sorted(clips)
    truth: dict[tuple[str, int], list[Span]] = {}
    for k, a in enumerate(actors):
        audio, spans = build_call(clips[a], CALL_RATE, seed=seed * 1_000 + a)
        name = f"mono16k-{a:02d}.wav"
        sf.write(folder / name, audio[0], CALL_RATE)
        truth[(name, 0)] = spans[0]
        b = actors[(k + 1) % len(actors)]
        other = clips[b] if b != a else clips[a][::-1]
        both, chans = turns(clips[a], other)
        audio, spans = build_call(both, CALL_RATE, seed=seed * 1_000 + 500 + a, channels=chans)
        name = f"stereo8k-{a:02d}-{b:02d}.wav"
        sf.write(folder / name, np.stack([telephone_8k(ch, CALL_RATE) for ch in audio], axis=1), TEL_SR)
        truth.update({(name, c): s for c, s in spans.items()})
    return truth


def speaker_of(name: str, channel: int) -> int:
    """The actor on a channel of a call `write_calls` named: `mono16k-AA.wav` holds AA, `stereo8k-AA-BB.wav`
    AA on channel 0 and BB on channel 1."""
    actors = Path(name).stem.split("-")[1:]
    return int(actors[min(channel, len(actors) - 1)])


def call_windows(
    data: Any, feature_set: str, *, seed: int = 0, clips_per_call: int = 20
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Labelled windows of generated calls of the actors of `data` (`write_calls`), featurised as `score`
    featurises a long recording (`--segments on --per-channel`, the default window settings): each window
    whose centre lies in a clip's speech, with that clip's emotion (an index into EMOTIONS), its actor and
    its call channel (the speaker group scoring normalises it with). Training fits the window temperature
    on them (models/ensemble.py `WindowRows`). Returns (X, y, actors, channel groups)."""
    import tempfile

    from aei_batch.records import EMOTIONS
    from aei_batch.scoring.windows import SegmentConfig, apply_vad, featurise_file

    cfg = SegmentConfig(mode="on", per_channel=True)
    X: list[np.ndarray] = []
    y: list[int] = []
    actors: list[int] = []
    groups: list[str] = []
    with tempfile.TemporaryDirectory(prefix="aei-train-calls-") as tmp:
        truth = write_calls(Path(tmp), data, clips_per_call=clips_per_call, seed=seed)
        for name in sorted({n for n, _ in truth}):
            fw = featurise_file(str(Path(tmp) / name), name, feature_set, cfg.as_dict(), None)
            for w in apply_vad(fw, cfg):
                under = label_at(truth.get((name, w.channel), []), (w.start + w.end) / 2 / fw.sr)
                if under is None or w.vec is None:
                    continue
                X.append(w.vec)
                y.append(EMOTIONS.index(under))
                actors.append(speaker_of(name, w.channel))
                groups.append(f"{name}/ch{w.channel}")
    dim = len(X[0]) if X else 0
    return (
        np.asarray(X, dtype=np.float32).reshape(len(X), dim),
        np.asarray(y, dtype=np.int64),
        np.asarray(actors, dtype=np.int64),
        groups,
    )


@dataclass(frozen=True)
class CallSettings:
    """How `windows_report` builds and scores its calls."""

    window_s: float = 3.0
    hop_s: float = 1.5
    call_clips: int = 20
    seed: int = 0
    runner: str = "local"


def windows_report(model_dir: str, model_name: str, data: Any, opts: Any = CallSettings()) -> dict[str, Any]:
    """Generated calls of the actors of `data` (`write_calls`), scored by `score` itself (`--segments on
    --per-channel`, the model's speaker mode: a speaker-adaptive model z-scores each channel's windows with
    that channel's statistics) with `opts.window_s` / `opts.hop_s` (`CallSettings`, or evaluate's options);
    per call format, the share of windows whose top emotion is the emotion of the clip under the window's
    centre (`window_agreement`)."""
    import tempfile

    from aei_batch.config import ScoreOptions
    from aei_batch.io.sinks.segments import read_segments
    from aei_batch.scoring.job import run_score
    from aei_batch.scoring.windows import SegmentConfig

    seg = SegmentConfig(mode="on", window_s=opts.window_s, hop_s=opts.hop_s, per_channel=True)
    with tempfile.TemporaryDirectory(prefix="aei-eval-calls-") as tmp:
        calls, out = Path(tmp) / "calls", Path(tmp) / "table"
        truth = write_calls(calls, data, clips_per_call=opts.call_clips, seed=opts.seed)
        run_score(
            ScoreOptions(
                source=str(calls),
                model_dir=model_dir,
                model_name=model_name,
                output=str(out),
                runner=opts.runner,
                table_format="parquet",
                segments=seg,
                progress=False,
                max_error_rate=1.0,
            )
        )
        segments = read_segments(str(out), "parquet").to_pylist()
    report: dict[str, Any] = {
        "window_s": seg.window_s,
        "hop_s": seg.hop_s,
        "context_s": seg.context_s,
        "denoise": seg.denoise,
        "clips_per_call": opts.call_clips,
        "counted": "windows whose centre lies in a clip's speech (its frames within 35 dB of its loudest); "
        "windows centred in pauses are left out (n_excluded)",
    }
    for fmt, (sr, label, what) in CALL_FORMATS.items():
        rows = [s for s in segments if str(s["uri"]).rsplit("/", 1)[-1].startswith(fmt)]
        files = {name for name, _ in truth if name.startswith(fmt)}
        report[fmt] = {
            "calls": len(files),
            "sample_rate": sr,
            "label": label,
            "what": what,
            **window_agreement(rows, {k: v for k, v in truth.items() if k[0] in files}),
        }
    return report
