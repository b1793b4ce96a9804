"""Draw one file's emotion timeline from the segments table to a PNG (matplotlib, Agg backend).

One panel per channel (one panel for a mixed-down file): the eight probabilities stacked over time
(each window drawn at its centre; runs of adjacent windows are joined, pauses are not), a band above
them with each window's top emotion, and grey shading where no window passed the voice gate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from aei_batch.errors import ConfigError, InputNotFoundError
from aei_batch.records import COL, EMOTIONS, PROB_COLUMNS, SEG

#: One colour per emotion, in EMOTIONS order (colour-blind-safe-ish, fixed across plots).
COLOURS = ("#9e9e9e", "#80cbc4", "#fdd835", "#1e88e5", "#e53935", "#8e24aa", "#6d4c41", "#fb8c00")


def find_file_segments(segs: pa.Table, uri: str) -> tuple[str, pa.Table]:
    """The rows of `uri` (exact, as an absolute local path, or the one stored uri ending with it)."""
    import os

    stored = pc.unique(segs[COL.uri]).to_pylist() if segs.num_rows else []
    candidates = [uri, os.path.abspath(uri)] if "://" not in uri else [uri]
    match = next((c for c in candidates if c in stored), None)
    if match is None:
        tail = [s for s in stored if s.endswith("/" + uri.lstrip("/"))]
        if len(tail) > 1:
            raise ConfigError(
                f"{uri!r} matches {len(tail)} files in the segments table",
                hint="give the full uri as stored: " + ", ".join(tail[:3]),
            )
        match = tail[0] if tail else None
    if match is None:
        raise InputNotFoundError(
            f"no segments for {uri!r} in the table",
            hint="score it with --segments on (or auto for long files) first",
        )
    return match, segs.filter(pc.equal(segs[COL.uri], match))


def _runs(starts: list[float], ends: list[float]) -> list[list[int]]:
    """Indices of windows grouped into runs of overlapping or touching windows."""
    runs: list[list[int]] = []
    for i in range(len(starts)):
        if runs and starts[i] <= ends[runs[-1][-1]] + 1e-6:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def _gaps(starts: list[float], ends: list[float], duration: float) -> list[tuple[float, float]]:
    gaps, covered = [], 0.0
    for a, b in sorted(zip(starts, ends, strict=True)):
        if a > covered + 1e-6:
            gaps.append((covered, a))
        covered = max(covered, b)
    if duration > covered + 1e-6:
        gaps.append((covered, duration))
    return gaps


def _panel(ax: Any, rows: list[dict[str, Any]], duration: float, label: str) -> None:
    import numpy as np

    starts = [r[SEG.start_s] for r in rows]
    ends = [r[SEG.end_s] for r in rows]
    probs = np.array([[r[c] for c in PROB_COLUMNS] for r in rows])
    mids = (np.array(starts) + np.array(ends)) / 2
    for run in _runs(starts, ends):
        # From the run's first window start to its last window end; the edge windows' values held flat.
        xs = np.concatenate([[starts[run[0]]], mids[run], [ends[run[-1]]]])
        ys = np.concatenate([probs[run[:1]], probs[run], probs[run[-1:]]]).T
        ax.stackplot(xs, ys, colors=COLOURS, linewidth=0)
    for a, b in _gaps(starts, ends, duration):
        ax.axvspan(a, b, color="#eeeeee", zorder=0)
    half = [(e - s) / 2 for s, e in zip(starts, ends, strict=True)]
    hop = min(np.diff(sorted(mids)).min(), min(half) * 2) if len(mids) > 1 else 2 * half[0]
    for m, r in zip(mids, rows, strict=True):
        k = EMOTIONS.index(r[SEG.top_emotion])
        ax.axvspan(m - hop / 2, m + hop / 2, ymin=1.02 / 1.12, ymax=1.0, color=COLOURS[k], clip_on=False)
    ax.set_xlim(0, duration)
    ax.set_ylim(0, 1.12)
    ax.set_yticks([0, 0.5, 1.0])
    ax.set_ylabel(label)


def draw_timeline(segs: pa.Table, out: str | Path, *, title: str, duration_s: float | None = None) -> Path:
    """Write the PNG for the segment rows of one file (all its channels); returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    rows = sorted(
        segs.to_pylist(), key=lambda r: (r[SEG.channel] is not None, r[SEG.channel] or 0, r[SEG.start_s])
    )
    if not rows:
        raise InputNotFoundError("no segment rows to draw")
    channels = list(dict.fromkeys(r[SEG.channel] for r in rows))
    duration = max(duration_s or 0.0, max(r[SEG.end_s] for r in rows))
    fig, axes = plt.subplots(
        len(channels), 1, figsize=(12, 0.8 + 2.4 * len(channels)), sharex=True, squeeze=False
    )
    for ax, ch in zip(axes[:, 0], channels, strict=True):
        label = "mix" if ch is None else f"channel {ch}"
        _panel(ax, [r for r in rows if r[SEG.channel] == ch], duration, label)
    axes[-1, 0].set_xlabel("time (s)")
    handles = [Patch(color=c, label=e) for c, e in zip(COLOURS, EMOTIONS, strict=True)]
    handles.append(Patch(color="#eeeeee", label="no speech (voice gate)"))
    fig.legend(handles=handles, loc="lower center", ncol=9, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_timeline(
    uri: str, table: str, out: str | None, *, fmt: str, run_id: str | None = None, catalog: Any = None
) -> tuple[Path, pa.Table]:
    """Read the segments of `uri` from the table at `table` and draw them; returns (png, rows drawn)."""
    from aei_batch.io.sinks.segments import read_segments

    segs = read_segments(table, fmt, run_id=run_id, catalog=catalog)
    match, mine = find_file_segments(segs, uri)
    duration = _duration(table, fmt, match, mine, catalog)
    name = match.rstrip("/").rsplit("/", 1)[-1]
    target = Path(out) if out else Path(f"{name.rsplit('.', 1)[0]}.timeline.png")
    run = mine[COL.run_id][0].as_py()
    title = f"{name}  ({run}, model {mine[COL.model_name][0].as_py()} {mine[COL.model_version][0].as_py()})"
    return draw_timeline(mine, target, title=title, duration_s=duration), mine


def _duration(table: str, fmt: str, uri: str, mine: pa.Table, catalog: Any) -> float | None:
    """The file's duration from its predictions row of the same run (None when not found)."""
    from aei_batch.io.sinks import read_predictions

    try:
        preds = read_predictions(table, fmt, catalog=catalog)
    except Exception:  # noqa: BLE001 - the plot still works from the segments alone
        return None
    run = mine[COL.run_id][0].as_py()
    hit = preds.filter(pc.and_(pc.equal(preds[COL.uri], uri), pc.equal(preds[COL.run_id], run)))
    return hit[COL.duration_s][0].as_py() if hit.num_rows else None
