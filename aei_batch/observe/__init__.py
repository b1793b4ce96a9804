"""Watching a run: the run summary JSON, metrics, the completion hook, OpenLineage events, JSON logs.

Cheap to import: each part imports its libraries when it is used (docs/OBSERVE.md).
"""

from aei_batch.observe.logs import configure_logging
from aei_batch.observe.observer import RunObserver
from aei_batch.observe.runfile import read_run_summary

__all__ = ["RunObserver", "configure_logging", "read_run_summary"]
