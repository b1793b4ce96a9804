"""Ray job entrypoints: what a Ray cluster runs for `ray job submit --working-dir . -- python -m jobs.<name>`.

Each module is a thin wrapper around the `aei-batch` CLI (same code, same exit codes); see jobs/README.md.
"""
