"""The in-process runner: same stage code, no Ray. For tests, debugging and tiny inputs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa


def run_local(
    stage_cls: type, stage_kwargs: dict[str, Any], table: pa.Table, *, batch_size: int
) -> Iterator[pa.Table]:
    stage = stage_cls(**stage_kwargs)
    for start in range(0, table.num_rows, batch_size):
        yield stage(table.slice(start, batch_size))
