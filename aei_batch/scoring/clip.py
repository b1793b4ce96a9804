"""The clip scorer's feature side: one file -> one feature vector, decoded and featurised in the worker's
decoder child under the decode timeout (aei_batch/runtime/watchdog.py).

Only the file's path (a local file, read by the child itself) or its bytes (a remote object) cross the pipe
to the child, and only the vector comes back (aei_batch/features/clip.py). Training featurises through the
same class (`FeatureTableStage`), so a model is trained on exactly the vectors scoring computes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aei_batch.scoring.inputs import check_listed_size, fetch, local_path
from aei_batch.scoring.rows import RunContext


class ClipFeaturiser:
    """Read + decode + featurise one file as one clip; owns the worker's decoder child."""

    def __init__(self, feature_set_name: str, ctx: RunContext) -> None:
        from aei_batch.features import get_feature_set
        from aei_batch.runtime.watchdog import Watchdog

        self.fs = get_feature_set(feature_set_name)
        self.ctx = ctx
        self.decoder = Watchdog(ctx.decode_timeout_s)  # decodes in a child process when a timeout is set
        if self.decoder.timeout_s is None:  # features run here: compile numba kernels now, not on file 1
            from aei_batch.features.clip import warm_up_features

            warm_up_features(feature_set_name)
        else:  # the child starts and warms up while this worker goes on setting up (model, first batch)
            self.decoder.prestart("aei_batch.features.clip")

    def run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """`fn(*args, **kwargs)` in the decoder child (under the timeout), or here without a watchdog."""
        return self.decoder.call(fn, *args, **kwargs)

    def featurise(
        self,
        ref: dict[str, Any],
        data: bytes | None = None,
        augment_seed: int | None = None,
        copy: str | None = None,
    ) -> tuple[np.ndarray, float]:
        """Features of one file as one clip; `data` are its bytes when the caller already read them. With
        `augment_seed` (training), a matrix: the clip's vector, then its augmented copies' (one decode); with
        `copy="telephone"` (evaluation), the vector of its telephone copy instead."""
        from aei_batch.decode.audio import ANALYSIS_SR
        from aei_batch.features.clip import decode_and_extract, read_decode_and_extract

        uri = ref["uri"]
        path = local_path(uri) if data is None else None
        if path is not None and self.decoder.timeout_s is not None:
            check_listed_size(ref, self.ctx)  # the decoder child reads the file itself: no bytes on the pipe
            vec, duration_s = self.run(
                read_decode_and_extract,
                path,
                uri,
                self.fs.id,
                sr=ANALYSIS_SR,
                max_duration_s=self.ctx.max_duration_s,
                max_bytes=self.ctx.max_file_bytes,
                augment_seed=augment_seed,
                copy=copy,
            )
            return vec, float(duration_s)
        data = fetch(ref, self.ctx) if data is None else data
        vec, duration_s = self.run(
            decode_and_extract,
            data,
            uri,
            self.fs.id,
            sr=ANALYSIS_SR,
            max_duration_s=self.ctx.max_duration_s,
            augment_seed=augment_seed,
            copy=copy,
        )
        return vec, float(duration_s)

    def close(self) -> None:
        self.decoder.close()
