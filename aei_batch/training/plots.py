"""Report figures (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_png(path: Path, report: dict[str, Any], title: str) -> None:
    """Row-normalised confusion matrix (rows: true emotion, columns: predicted) with counts."""
    plt = _plt()
    cm = np.asarray(report["confusion"], dtype=float)
    labels = report["labels"]
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j,
                i,
                int(cm[i, j]),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}\naccuracy {report['accuracy']:.3f}, UAR {report['uar']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def per_actor_png(path: Path, report: dict[str, Any], title: str) -> None:
    """Bar chart of accuracy per held-out actor, with the pooled accuracy as a line."""
    plt = _plt()
    per = report["per_actor_accuracy"]
    actors = sorted(per)
    fig, ax = plt.subplots(figsize=(max(5, 0.45 * len(actors) + 2), 3.5))
    ax.bar(actors, [per[a] for a in actors], color=["#4477aa" if int(a) % 2 else "#cc6677" for a in actors])
    ax.axhline(report["accuracy"], color="black", linestyle="--", linewidth=1, label="pooled")
    ax.set_ylim(0, 1)
    ax.set_xlabel("actor (blue: male, red: female)")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
