"""Featurised RAVDESS corpora for bench/eval_audio_nested.py, cached on disk.

clips: every labelled file in five versions, featurised with one feature set:
  full      the clip at the analysis rate (what `aei-batch score` featurises)
  tel       its telephone copy (8 kHz, 300-3,400 Hz, mu-law; features/augment.py), back at the analysis rate
  crop1/2   random 2-4 s crops of the clip, crop3 of the telephone copy (training augmentation only)
speed: each clip at 0.9 and 1.1 times its speed (features/augment.py `speed`), then those two as telephone
  copies (training augmentation only), cached in a file of their own so that the clips' cache stays valid
calls: generated call recordings of each actor's clips, scored as `--segments on` does (3 s windows
  every 1.5 s, the pipeline's own windowing, trimming and voice gate from scoring/windows.py):
  mono16k   one actor per call, 20 clips joined with 1-2 s pauses, 16 kHz mono
  stereo8k  two actors of the same CV fold (one pair per fold) taking turns, one per channel,
            each channel an 8 kHz telephone channel (20 clips each)
  Every window is labelled with the clip whose speech it overlaps most (windows that overlap no
  clip's speech are dropped before any scoring).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

CLIP_VARIANTS = ("full", "tel", "crop1", "crop2", "crop3")
#: the feature set the nested benches and studies measure: `voice_audio`'s newest version (what `train` uses);
#: `AEI_BENCH_FEATURE_SET=voice_audio@v1` measures an older one (its caches and kept fold models are filed
#: under its own hash)
FEATURE_SET = os.environ.get("AEI_BENCH_FEATURE_SET", "voice_audio")
#: stereo calls per fold of the generated calls: 2 pairs put all four actors of a fold on a stereo call, as
#: the mono calls do (since issue 15 round 8); `AEI_BENCH_STEREO_PAIRS=1` gives the half of them that every
#: earlier round measured (the same calls, the same seeds)
STEREO_PAIRS = int(os.environ.get("AEI_BENCH_STEREO_PAIRS", "2"))
ANALYSIS_SR = 22050
NOISE_DBFS = -65.0  # a faint noise floor under the pauses (the voice gate's absolute floor is -55 dBFS)


def fold_model_dir(cache: Path, fs_name: str = FEATURE_SET) -> Path:
    """Where the nested benches keep fitted fold models: per feature-set hash, so a changed extractor never
    reuses models fitted on the old features (a model's file name is its row's name, mode and fold)."""
    from aei_batch.features import get_feature_set

    return cache / "fold_models" / get_feature_set(fs_name).param_hash


#: eval_audio_nested.py's default row: the name its kept fold models are filed under
DEFAULT_ROW = "voice_audio+blend (aug+speed+tel, adapt)"


def study_setup(doc: str, extra: Any = None) -> tuple[Any, Path, dict[str, np.ndarray]] | None:
    """The studies' common start: --data, --cache-dir, --workers (and `extra(parser)`'s own options) parsed,
    the training clips (variants 0-8) built or read; None (after printing SKIP) without the dataset."""
    import argparse

    from eval_audio_nested import DEFAULT_DATA

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--cache-dir", default="/work/wt/cache")
    ap.add_argument("--workers", type=int, default=2)
    if extra is not None:
        extra(ap)
    args = ap.parse_args()
    if not Path(args.data).is_dir():
        print(f"SKIP: dataset not found at {args.data}")
        return None
    cache = Path(args.cache_dir)
    return args, cache, build_training_clips(args.data, FEATURE_SET, cache, args.workers)


def kept_folds(
    cache: Path, clips: dict[str, np.ndarray], sa: bool, name: str = DEFAULT_ROW, min_files: int = 10
) -> Any:
    """Per outer fold of eval_audio_nested.py: (train rows, test rows, predict), with the fold model that
    `--keep-models` kept; `predict(X, keys)` gives (n, 8) probabilities, the rows first z-scored and adapted
    per group of `keys` in speaker-adaptive mode, as the nested bench scores them."""
    import pickle

    from eval_audio_nested import TRAIN_VARIANTS

    from aei_batch.models.adapt import predict_adapted
    from aei_batch.scoring.speaker import GlobalStats, normalise
    from aei_batch.training.cv import actor_folds

    for k, (tr, te) in enumerate(actor_folds(clips["actors"], 5)):
        saved = fold_model_dir(cache) / f"{name.replace(' ', '_')}-sa{int(sa)}-fold{k}.pkl"
        if not saved.is_file():
            raise SystemExit(f"no fold model {saved}: eval_audio_nested.py --keep-models with its row first")
        model = pickle.loads(saved.read_bytes())[0]  # bench-only cache (local pickle)
        g = GlobalStats.fit(np.concatenate([clips["X"][tr, v] for v in TRAIN_VARIANTS["aug"]]))

        def predict(X: np.ndarray, keys: list[str], model: Any = model, g: Any = g) -> np.ndarray:
            Z = normalise(X, keys, g, min_files)[0] if sa else X
            return predict_adapted(model, Z, list(keys), min_files)  # type: ignore[no-any-return]

        yield tr, te, predict


def _load(path: str) -> np.ndarray:
    import soundfile as sf

    from aei_batch.decode.audio import to_mono_resampled

    raw, sr = sf.read(path, dtype="float32", always_2d=True)
    return to_mono_resampled(raw.T, sr, ANALYSIS_SR)


def _raw(path: str) -> tuple[np.ndarray, int]:
    import soundfile as sf

    raw, sr = sf.read(path, dtype="float32", always_2d=True)
    return raw.mean(axis=1), int(sr)


def _clip_job(args: tuple[str, str, int]) -> np.ndarray:
    from aei_batch.features import get_feature_set
    from aei_batch.features.augment import random_crop, telephone

    path, fs_name, seed = args
    fs = get_feature_set(fs_name)
    y = _load(path)
    tel = telephone(y, ANALYSIS_SR)
    rng = np.random.default_rng(seed)
    versions = [y, tel, random_crop(y, ANALYSIS_SR, rng), random_crop(y, ANALYSIS_SR, rng)]
    versions.append(random_crop(tel, ANALYSIS_SR, rng))
    return np.stack([fs.extract(v, ANALYSIS_SR) for v in versions])


def list_files(data: str) -> list[str]:
    from aei_batch.records import parse_ravdess_name

    out = []
    for root, _, files in os.walk(data):
        for f in files:
            lab = parse_ravdess_name(f)
            if lab.emotion is not None and lab.actor is not None:
                out.append(os.path.join(root, f))
    return sorted(out)


def _pool(workers: int):  # type: ignore[no-untyped-def]
    import multiprocessing as mp

    return mp.get_context("fork").Pool(workers)


def build_clips(data: str, fs_name: str, cache: Path, workers: int = 2) -> dict[str, np.ndarray]:
    from aei_batch.features import get_feature_set
    from aei_batch.records import EMOTIONS, parse_ravdess_name

    fs = get_feature_set(fs_name)
    files = list_files(data)
    path = cache / f"clips-{fs.name}-{fs.param_hash}-{len(files)}.npz"
    if path.is_file():
        return dict(np.load(path, allow_pickle=False))
    t0 = time.perf_counter()
    jobs = [(f, fs_name, i) for i, f in enumerate(files)]
    with _pool(workers) as pool:
        X = np.stack(pool.map(_clip_job, jobs, chunksize=8))
    secs = time.perf_counter() - t0
    labs = [parse_ravdess_name(f) for f in files]
    out = {
        "X": X.astype(np.float32),
        "y": np.array([EMOTIONS.index(str(lab.emotion)) for lab in labs]),
        "actors": np.array([int(lab.actor or 0) for lab in labs]),
        "uris": np.array(files),
        "seconds": np.array(secs),
    }
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **out)  # type: ignore[arg-type]
    print(f"clips {fs_name}: {X.shape} in {secs:.0f}s", file=sys.stderr)
    return out


def _speed_job(args: tuple[str, str]) -> np.ndarray:
    from aei_batch.features import get_feature_set
    from aei_batch.features.augment import SPEEDS, speed, telephone

    path, fs_name = args
    fs = get_feature_set(fs_name)
    y = _load(path)
    fast = [speed(y, ANALYSIS_SR, f) for f in SPEEDS]
    fast += [telephone(f, ANALYSIS_SR) for f in fast]
    return np.stack([fs.extract(f, ANALYSIS_SR) for f in fast])


def build_speed(data: str, fs_name: str, cache: Path, workers: int = 2) -> np.ndarray:
    """(files, 2 * len(SPEEDS), dim): the speed copies' features, then their telephone copies', in
    `build_clips`'s file order (training's VARIANTS 5-8)."""
    from aei_batch.features import get_feature_set
    from aei_batch.features.augment import SPEEDS

    fs = get_feature_set(fs_name)
    files = list_files(data)
    tag = "-".join(f"{f:g}" for f in SPEEDS)
    path = cache / f"speed{tag}tel-{fs.name}-{fs.param_hash}-{len(files)}.npz"
    if path.is_file():
        return np.load(path, allow_pickle=False)["X"]  # type: ignore[no-any-return]
    t0 = time.perf_counter()
    with _pool(workers) as pool:
        X = np.stack(pool.map(_speed_job, [(f, fs_name) for f in files], chunksize=8)).astype(np.float32)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, X=X, uris=np.array(files))
    print(f"speed copies {fs_name}: {X.shape} in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    return X


def window_crop(
    y: np.ndarray, sr: int, rng: np.random.Generator, window_s: float = 3.0, min_s: float = 0.6
) -> np.ndarray:
    """What a `window_s` call window at a random position keeps of a clip once trimmed to its voiced part:
    the part of the clip's speech span (`speech_span`) under the window, at least `min_s` of it."""
    a, b = speech_span(y, sr)
    w, m = int(window_s * sr), int(min_s * sr)
    if b - a <= m:
        return y[a:b] if b - a >= sr // 4 else y
    s = int(rng.integers(a - w + m, b - m + 1))
    return y[max(a, s) : min(b, s + w)]


def build_training_clips(data: str, fs_name: str, cache: Path, workers: int = 2) -> dict[str, np.ndarray]:
    """`build_clips` with the speed copies appended: X is (files, 9, dim), training's VARIANTS 0-8."""
    clips = build_clips(data, fs_name, cache, workers)
    clips["X"] = np.concatenate([clips["X"], build_speed(data, fs_name, cache, workers)], axis=1)
    return clips


def _window_crop_job(args: tuple[str, str, int]) -> np.ndarray:
    from aei_batch.features import get_feature_set
    from aei_batch.features.augment import telephone

    path, fs_name, seed = args
    fs = get_feature_set(fs_name)
    y = _load(path)
    rng = np.random.default_rng(seed + 7777)
    tel = telephone(y, ANALYSIS_SR)
    crops = [
        window_crop(y, ANALYSIS_SR, rng),
        window_crop(y, ANALYSIS_SR, rng),
        window_crop(tel, ANALYSIS_SR, rng),
    ]
    return np.stack([fs.extract(c, ANALYSIS_SR) for c in crops])


def build_window_crops(data: str, fs_name: str, cache: Path, workers: int = 2) -> np.ndarray:
    """(files, 3, dim): two window crops of each clip and one of its telephone copy (`window_crop`), in
    `build_clips`'s file order: an alternative to training's random crops (VARIANTS 2-4)."""
    from aei_batch.features import get_feature_set

    fs = get_feature_set(fs_name)
    files = list_files(data)
    path = cache / f"wcrops-{fs.name}-{fs.param_hash}-{len(files)}.npz"
    return _per_file(path, _window_crop_job, [(f, fs_name, i) for i, f in enumerate(files)], workers)


def _per_file(path: Path, job: Any, jobs: list[Any], workers: int) -> np.ndarray:
    """Stacked `job` results (one (copies, dim) array per file), cached at `path`."""
    if path.is_file():
        return np.load(path, allow_pickle=False)["X"]  # type: ignore[no-any-return]
    t0 = time.perf_counter()
    with _pool(workers) as pool:
        X = np.stack(pool.map(job, jobs, chunksize=8)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, X=X, uris=np.array([j[0] for j in jobs]))
    print(f"{path.name}: {X.shape} in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    return X


def _noisy_crop_job(args: tuple[str, str, int, bool]) -> np.ndarray:
    from aei_batch.features import get_feature_set
    from aei_batch.features.augment import random_crop, telephone
    from aei_batch.records import parse_ravdess_name

    path, fs_name, seed, per_speaker = args
    fs = get_feature_set(fs_name)
    y = _load(path)
    tel = telephone(y, ANALYSIS_SR)
    rng = np.random.default_rng(seed)  # the same crops as build_clips' variants 2-4
    crops = [
        random_crop(y, ANALYSIS_SR, rng),
        random_crop(y, ANALYSIS_SR, rng),
        random_crop(tel, ANALYSIS_SR, rng),
    ]
    noise = np.random.default_rng(seed + 5555)
    actor = int(parse_ravdess_name(path).actor or 0)
    out = []
    for v, c in enumerate(crops):
        # per_speaker: one level per (speaker, copy), as a channel's noise floor is steady over a call
        lv = np.random.default_rng(1000 * actor + v).uniform(*NOISE_RANGE_DBFS) if per_speaker else None
        level = 10 ** ((noise.uniform(*NOISE_RANGE_DBFS) if lv is None else lv) / 20)
        out.append(fs.extract((c + level * noise.standard_normal(len(c))).astype(np.float32), ANALYSIS_SR))
    return np.stack(out)


#: the noise floor of the noisy crops: white noise at a level drawn uniformly from this range (dBFS RMS)
NOISE_RANGE_DBFS = (-75.0, -50.0)


def build_noisy_crops(
    data: str, fs_name: str, cache: Path, workers: int = 2, per_speaker: bool = False
) -> np.ndarray:
    """(files, 3, dim): training's three crops (VARIANTS 2-4, as `build_clips` cuts them) under a white noise
    floor at a random level in NOISE_RANGE_DBFS: an alternative to the clean crops."""
    from aei_batch.features import get_feature_set

    fs = get_feature_set(fs_name)
    files = list_files(data)
    path = cache / f"ncrops{'-spk' if per_speaker else ''}-{fs.name}-{fs.param_hash}-{len(files)}.npz"
    return _per_file(
        path, _noisy_crop_job, [(f, fs_name, i, per_speaker) for i, f in enumerate(files)], workers
    )


def speech_span(y: np.ndarray, sr: int, rel_db: float = 35.0) -> tuple[int, int]:
    """First and last sample of the frames within rel_db of the clip's loudest 512-sample frame."""
    n = len(y) // 512
    lv = 10 * np.log10((y[: n * 512].reshape(n, 512).astype(np.float64) ** 2).mean(axis=1) + 1e-12)
    idx = np.flatnonzero(lv >= lv.max() - rel_db)
    return int(idx[0] * 512), int((idx[-1] + 1) * 512)


def _call_job(
    args: tuple[str, list[list[str]], int, str, int, dict[str, float]],
) -> dict[str, np.ndarray]:
    """One generated call: windows' features, labels (clip emotion), channel."""
    import soxr

    from aei_batch.features import get_feature_set
    from aei_batch.features.augment import telephone_8k
    from aei_batch.records import EMOTIONS, parse_ravdess_name
    from aei_batch.scoring.windows import SegmentConfig, apply_vad, featurise_stream

    fmt, channels, seed, fs_name, call_id, grid = args
    fs = get_feature_set(fs_name)
    rng = np.random.default_rng(seed)
    sr = 16000 if fmt == "mono16k" else 8000
    n_ch = len(channels)
    # turns: mono = one channel's clips in order; stereo = the two channels alternate
    turns = [
        (c, ch[i])
        for i in range(max(len(ch) for ch in channels))
        for c, ch in enumerate(channels)
        if i < len(ch)
    ]
    pieces: list[np.ndarray] = []
    spans: list[tuple[int, int, int, int]] = []  # channel, start, end (speech, at sr), label
    pos = 0
    for c, f in turns:
        y, src_sr = _raw(f)
        y = soxr.resample(y, src_sr, sr).astype(np.float32)
        if fmt == "stereo8k":
            y = telephone_8k(y, sr)
        a, b = speech_span(y, sr)
        seg = np.zeros((n_ch, len(y)), dtype=np.float32)
        seg[c] = y
        pause = np.zeros((n_ch, int(rng.uniform(1.0, 2.0) * sr)), dtype=np.float32)
        pieces += [seg, pause]
        spans.append((c, pos + a, pos + b, EMOTIONS.index(str(parse_ravdess_name(f).emotion))))
        pos += len(y) + pause.shape[1]
    audio = np.concatenate(pieces, axis=1)
    audio += (10 ** (NOISE_DBFS / 20) * rng.standard_normal(audio.shape)).astype(np.float32)
    up = np.stack([soxr.resample(ch, sr, ANALYSIS_SR, quality="HQ") for ch in audio]).astype(np.float32)
    cfg = SegmentConfig(mode="on", per_channel=True, **grid)
    chunk = round(cfg.chunk_s * ANALYSIS_SR)
    fw = featurise_stream((up[:, i : i + chunk] for i in range(0, up.shape[1], chunk)), fs, ANALYSIS_SR, cfg)
    kept = apply_vad(fw, cfg)
    X, y_, ch_ = [], [], []
    scale = sr / ANALYSIS_SR
    for w in kept:
        a, b = w.start * scale, w.end * scale
        best, lab = 0.0, -1
        for c, s, e, label in spans:
            ov = min(b, e) - max(a, s)
            if c == w.channel and ov > best:
                best, lab = ov, label
        if lab < 0:
            continue
        X.append(w.vec)
        y_.append(lab)
        ch_.append(w.channel)
    return {
        "X": np.asarray(X, dtype=np.float32).reshape(len(X), fs.dim),
        "y": np.asarray(y_, dtype=np.int64),
        "channel": np.asarray(ch_, dtype=np.int64),
        "call": np.full(len(X), call_id),
        "audio_s": np.array(up.shape[1] / ANALYSIS_SR),
    }


def build_calls(
    data: str,
    fs_name: str,
    cache: Path,
    n_folds: int = 5,
    calls_per_actor: int = 1,
    workers: int = 2,
    clips_per_call: int = 20,
    pairs_per_fold: int = STEREO_PAIRS,
    window_s: float = 3.0,
    hop_s: float = 1.5,
    context_s: float | None = None,
    join_gap_s: float | None = None,
    denoise: bool | None = None,
) -> dict[str, np.ndarray]:
    """Generated calls for every actor (mono16k) and `pairs_per_fold` same-fold actor pairs (stereo8k; 2 =
    every actor of a 5-fold split of 20 actors, 1 = half of them, as before issue 15 round 8), cut into the
    pipeline's windows (`window_s` every `hop_s`, each featurised on the stretch of speech under it within
    `context_s` joined across pauses under `join_gap_s`, cleaned of the channel's noise when `denoise`:
    the pipeline's defaults unless given)."""
    from aei_batch.features import get_feature_set
    from aei_batch.records import parse_ravdess_name
    from aei_batch.scoring.windows import SegmentConfig

    fs = get_feature_set(fs_name)
    files = list_files(data)
    d = SegmentConfig()
    ctx = d.context_s if context_s is None else context_s
    gap = d.join_gap_s if join_gap_s is None else join_gap_s
    dn = d.denoise if denoise is None else denoise
    grid = {"window_s": window_s, "hop_s": hop_s, "context_s": ctx, "join_gap_s": gap, "denoise": dn}
    tag = "" if (window_s, hop_s) == (3.0, 1.5) else f"-w{window_s:g}h{hop_s:g}"
    tag += f"-c{ctx:g}g{gap:g}" if ctx else ""  # no tag: each window on its own voiced span
    tag += "-dn" if dn else ""  # no tag: windows not cleaned of noise (before issue 15 round 6)
    tag += f"-sp{pairs_per_fold}" if pairs_per_fold != 1 else ""  # no tag: one stereo pair per fold
    path = cache / f"calls-{fs.name}-{fs.param_hash}-{len(files)}-{calls_per_actor}{tag}.npz"
    if path.is_file():
        return dict(np.load(path, allow_pickle=False))
    by_actor: dict[int, list[str]] = {}
    for f in files:
        by_actor.setdefault(int(parse_ravdess_name(f).actor or 0), []).append(f)
    actors = sorted(by_actor)
    rng = np.random.default_rng(15)
    per = min(clips_per_call, min(len(v) for v in by_actor.values()) // calls_per_actor)
    calls: dict[int, list[list[str]]] = {}
    for a in actors:
        order = list(rng.permutation(by_actor[a]))
        calls[a] = [order[i * per : (i + 1) * per] for i in range(calls_per_actor)]
    jobs, meta = [], []
    cid = 0
    for a in actors:
        for k in range(calls_per_actor):
            jobs.append(("mono16k", [calls[a][k]], 1000 + cid, fs_name, cid, grid))
            meta.append(("mono16k", [a], 0))
            cid += 1
    # the fold's first pair in every fold, then its second: the calls of `pairs_per_fold=1` (before issue
    # 15 round 8) stay the same calls, with the same seeds, when more pairs are asked for
    for p in range(0, 2 * pairs_per_fold, 2):
        for k in range(n_folds):
            fold = actors[k::n_folds]
            if p + 1 >= len(fold):
                continue
            a, b = fold[p], fold[p + 1]
            for j in range(calls_per_actor):
                jobs.append(("stereo8k", [calls[a][j], calls[b][j]], 1000 + cid, fs_name, cid, grid))
                meta.append(("stereo8k", [a, b], p // 2 + 1))
                cid += 1
    t0 = time.perf_counter()
    with _pool(workers) as pool:
        res = pool.map(_call_job, jobs, chunksize=1)
    secs = time.perf_counter() - t0
    keys = ("X", "y", "channel", "call", "actor", "fmt", "pair")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for r, (fmt, acts, pair) in zip(res, meta, strict=True):
        for k in ("X", "y", "channel", "call"):
            parts[k].append(r[k])
        parts["actor"].append(np.array([acts[c] for c in r["channel"]], dtype=np.int64))
        parts["fmt"].append(np.full(len(r["y"]), 0 if fmt == "mono16k" else 1))
        parts["pair"].append(np.full(len(r["y"]), pair))  # 0 mono, else the stereo call's pair in its fold
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out["seconds"] = np.array(secs)
    out["audio_s"] = np.array(sum(float(r["audio_s"]) for r in res))
    np.savez_compressed(path, **out)  # type: ignore[arg-type]
    print(f"calls {fs_name}: {out['X'].shape} windows in {secs:.0f}s", file=sys.stderr)
    return out


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/datasets/ravdess-speech")
    ap.add_argument("--feature-set", default=FEATURE_SET)
    ap.add_argument("--cache-dir", default="/work/wt/cache")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--what", default="clips,calls")
    a = ap.parse_args()
    if "clips" in a.what:
        build_clips(a.data, a.feature_set, Path(a.cache_dir), a.workers)
    if "calls" in a.what:
        build_calls(a.data, a.feature_set, Path(a.cache_dir), workers=a.workers)
