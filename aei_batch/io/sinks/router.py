"""Route a batch's typed outputs to their sinks, and commit or abort them together.

Every sink has the same protocol: `write(table)`, `commit()`, `abort()`. The router writes predictions,
segments and frames to their own sinks, and commits the sibling tables first (frames, then segments), the
predictions table last: readers join siblings to the predictions rows by (uri, run_id), so a sibling's rows
become visible only once the predictions rows that name them are committed. The segments sink is told which
files this run scored (their keys), so that it replaces those files' earlier segments.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from aei_batch.records import COL


class OutputRouter:
    def __init__(self, predictions: Any, segments: Any = None, frames: Any = None) -> None:
        self.predictions = predictions
        self.segments = segments
        self.frames = frames
        self._keys: list[pa.Table] = []  # (uri, etag, model_version) of the rows since the last checkpoint

    @property
    def rows(self) -> int:
        return int(self.predictions.rows)

    def write(self, out: Any) -> None:
        """Write a stage output's tables (`predictions`, `segments`, `frames`; any may be None)."""
        if getattr(out, "frames", None) is not None and self.frames is not None:
            self.frames.write(out.frames)
        if getattr(out, "segments", None) is not None and self.segments is not None:
            self.segments.write(out.segments)
        self.write_predictions(out.predictions)

    def write_predictions(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        self.predictions.write(table)
        if self.segments is not None:
            self._keys.append(table.select([COL.uri, COL.etag, COL.model_version]))

    @property
    def can_checkpoint(self) -> bool:
        return hasattr(self.predictions, "checkpoint")

    def checkpoint(self, properties: dict[str, str] | None = None) -> None:
        """Commit what is staged so far (segments first, then predictions), so that a rerun of a killed run
        scores only the rest. Frames are published with the final commit only."""
        if self.segments is not None and hasattr(self.segments, "checkpoint"):
            self.segments.checkpoint(self._scored_keys(), properties)
        self.predictions.checkpoint(properties)
        self._keys = []

    def resume(self, run_ids: list[str]) -> None:
        """This run finishes `run_ids` (unfinished runs of the same command)."""
        for sink in (self.predictions, self.segments):
            if sink is not None and hasattr(sink, "resume"):
                sink.resume(run_ids)

    def _scored_keys(self) -> pa.Table | None:
        return pa.concat_tables(self._keys) if self._keys else None

    def commit(self, properties: dict[str, str] | None = None) -> str:
        """Frames, segments, then predictions (with `properties` in its snapshot summary where the table
        format has one); returns where the predictions went."""
        if self.frames is not None:
            self.frames.commit()
        if self.segments is not None:
            self.segments.commit(self._scored_keys())
        if properties and _accepts_properties(self.predictions.commit):
            return str(self.predictions.commit(properties=properties))
        return str(self.predictions.commit())

    def abort(self) -> None:
        for sink in (self.predictions, self.segments, self.frames):
            if sink is not None:
                sink.abort()


def _accepts_properties(fn: Any) -> bool:
    import inspect

    return "properties" in inspect.signature(fn).parameters
