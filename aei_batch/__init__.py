"""aei_batch: batch emotion recognition from speech and faces, fanned out with Ray.

Importing the package is cheap on purpose: heavy libraries load inside the functions that need them.
The public Python API (`aei_batch.api`) is re-exported here lazily:

    import aei_batch

    summary = aei_batch.score("recordings/", model_dir="models/audio-v1", output="warehouse/")
    df = aei_batch.read_predictions("warehouse/", latest=True, as_pandas=True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aei_batch._version import __version__

_API = ("score", "train", "evaluate", "query", "read_predictions", "read_segments", "read_run_summary")
_OTHER = {
    "RunSummary": "aei_batch.scoring.summary",
    "AeiError": "aei_batch.errors",
    "RunObserver": "aei_batch.observe",
    "configure_logging": "aei_batch.observe",
}
__all__ = [
    "AeiError",
    "RunObserver",
    "RunSummary",
    "__version__",
    "configure_logging",
    "evaluate",
    "query",
    "read_predictions",
    "read_run_summary",
    "read_segments",
    "score",
    "train",
]

if TYPE_CHECKING:
    from aei_batch.api import (
        evaluate,
        query,
        read_predictions,
        read_run_summary,
        read_segments,
        score,
        train,
    )
    from aei_batch.errors import AeiError
    from aei_batch.observe import RunObserver, configure_logging
    from aei_batch.scoring.summary import RunSummary


def __getattr__(name: str) -> Any:
    """Load `aei_batch.api` (and friends) on first use, so `import aei_batch` stays instant."""
    import importlib

    if name in _API:
        return getattr(importlib.import_module("aei_batch.api"), name)
    if name in _OTHER:
        return getattr(importlib.import_module(_OTHER[name]), name)
    raise AttributeError(f"module 'aei_batch' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
