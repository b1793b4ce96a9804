"""The package version (one place; `aei_batch.__version__` re-exports it)."""

__version__ = "0.1.0"
