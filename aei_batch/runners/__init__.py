"""Where the stages run: in-process (`local`) or on a Ray cluster (`ray`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa


def run_stage(
    stage_cls: type, stage_kwargs: dict[str, Any], table: pa.Table, *, runner: str = "ray", batch_size: int = 16,
    workers: int | None = None,
) -> Iterator[pa.Table]:
    """Run `stage_cls(**stage_kwargs)` over `table` in batches; yield output tables as they complete."""
    if runner == "local":
        from aei_batch.runners.local import run_local

        return run_local(stage_cls, stage_kwargs, table, batch_size=batch_size)
    if runner == "ray":
        from aei_batch.runners.ray_runner import run_ray

        return run_ray(stage_cls, stage_kwargs, table, batch_size=batch_size, workers=workers)
    from aei_batch.errors import ConfigError

    raise ConfigError(f"unknown runner {runner!r}", hint="use --runner ray or --runner local")
