"""Decoders: containers to analysis-ready arrays."""
