"""A synthetic RAVDESS-named corpus for the demo and the tests: no data to fetch.

Each clip is a voiced "utterance": a harmonic source whose pitch contour, loudness, speaking rate,
brightness, breathiness and jitter depend on the emotion (loosely following the acoustic correlates
reported for acted speech), shaped by vowel formants, with per-actor pitch and timbre. It is not
speech; it gives the pipeline real audio files with a learnable, speaker-dependent signal.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aei_batch.records import EMOTIONS


@dataclass(frozen=True)
class Prosody:
    pitch: float  # multiplier on the actor's base F0
    range_st: float  # pitch movement, semitones
    slope_st: float  # overall rise (+) or fall (-), semitones
    rate: float  # syllables per second
    loud: float  # peak amplitude
    tilt: float  # spectral roll-off exponent (higher = darker)
    breath: float  # noise share
    jitter: float  # fast pitch perturbation, semitones


PROSODY: dict[str, Prosody] = {
    "neutral": Prosody(1.00, 1.5, -1.0, 3.8, 0.30, 1.6, 0.03, 0.05),
    "calm": Prosody(0.94, 0.8, -1.5, 3.0, 0.22, 1.9, 0.05, 0.03),
    "happy": Prosody(1.22, 5.0, 1.0, 4.8, 0.55, 1.1, 0.04, 0.10),
    "sad": Prosody(0.90, 1.0, -3.0, 2.6, 0.16, 2.2, 0.12, 0.06),
    "angry": Prosody(1.15, 3.5, -2.0, 5.2, 0.85, 0.7, 0.08, 0.25),
    "fearful": Prosody(1.40, 3.0, 0.5, 5.8, 0.40, 1.3, 0.15, 0.45),
    "disgust": Prosody(0.86, 2.0, -2.5, 2.9, 0.38, 1.5, 0.10, 0.15),
    "surprised": Prosody(1.45, 7.0, 5.0, 4.2, 0.60, 1.0, 0.05, 0.08),
}

_VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (640, 1190, 2390))


def _formant_gain(freqs: np.ndarray, formants: tuple[int, ...], scale: float) -> np.ndarray:
    gain = np.full_like(freqs, 0.05)
    for f in formants:
        fc = f * scale
        gain += np.exp(-0.5 * ((freqs - fc) / (0.08 * fc + 60)) ** 2)
    return gain


def synth_clip(
    emotion: str,
    actor: int,
    *,
    intensity: int = 1,
    statement: int = 1,
    repetition: int = 1,
    sr: int = 16_000,
    seconds: float = 2.0,
) -> np.ndarray:
    """One utterance as float32 mono at `sr`."""
    p = PROSODY[emotion]
    rng = np.random.default_rng(
        zlib.crc32(f"{emotion}-{actor}-{intensity}-{statement}-{repetition}".encode())
    )
    strength = 1.0 if intensity == 1 else 1.35
    female = actor % 2 == 0
    base_f0 = (200.0 if female else 115.0) * (1 + 0.06 * ((actor * 7) % 5 - 2))
    timbre = (1.15 if female else 1.0) * (1 + 0.03 * ((actor * 3) % 5 - 2))
    n = int(sr * seconds)
    t = np.arange(n) / sr
    contour = p.slope_st * strength * (t / seconds - 0.5) + p.range_st * strength * 0.5 * np.sin(
        2 * np.pi * (0.6 + 0.2 * statement) * t + rng.uniform(0, 6.28)
    )
    jitter = p.jitter * strength * np.convolve(rng.standard_normal(n), np.ones(80) / 80, mode="same") * 8
    f0 = base_f0 * p.pitch * 2 ** ((contour + jitter) / 12)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    syllable = np.clip(np.sin(np.pi * p.rate * t + rng.uniform(0, 1)) ** 2, 0, 1) ** 0.7
    vowel_idx = (np.floor(p.rate * t) + statement) % len(_VOWELS)
    y = np.zeros(n)
    for k in range(1, 25):
        fk = k * f0
        amp = k ** (-p.tilt / strength)
        for v, formants in enumerate(_VOWELS):
            sel = vowel_idx == v
            if sel.any():
                y[sel] += amp * _formant_gain(fk[sel], formants, timbre) * np.sin(k * phase[sel])
        if (k * base_f0 * p.pitch) > sr / 2.5:
            break
    y /= np.max(np.abs(y)) + 1e-9
    y = (1 - p.breath) * y + p.breath * rng.standard_normal(n) * 0.5
    edge = np.minimum(1.0, np.minimum(t, seconds - t) / 0.15)
    y *= syllable * edge * p.loud * min(1.0, strength)
    return (y / max(1.0, np.max(np.abs(y)) / 0.98)).astype(np.float32)


def make_corpus(
    folder: str | Path,
    *,
    actors: range | list[int] = range(17, 25),
    statements: tuple[int, ...] = (1, 2),
    repetitions: tuple[int, ...] = (1,),
    sr: int = 16_000,
    seconds: float = 2.0,
    ext: str = ".wav",
) -> list[Path]:
    """Write a RAVDESS-named corpus (`Actor_XX/03-01-EE-II-SS-RR-AA.wav`), speech only, and list its files."""
    import soundfile as sf

    root = Path(folder)
    paths = []
    for actor in actors:
        d = root / f"Actor_{actor:02d}"
        d.mkdir(parents=True, exist_ok=True)
        for e, emotion in enumerate(EMOTIONS, start=1):
            for stmt in statements:
                for rep in repetitions:
                    intensity = 1 if emotion == "neutral" else 1 + (stmt + rep) % 2
                    y = synth_clip(
                        emotion,
                        actor,
                        intensity=intensity,
                        statement=stmt,
                        repetition=rep,
                        sr=sr,
                        seconds=seconds,
                    )
                    path = d / f"03-01-{e:02d}-{intensity:02d}-{stmt:02d}-{rep:02d}-{actor:02d}{ext}"
                    sf.write(path, y, sr)
                    paths.append(path)
    return paths
