"""Feature extractors, each a named, versioned set with a parameter hash."""

from aei_batch.features.base import FeatureSet
from aei_batch.features.registry import get_feature_set, list_feature_sets, register

__all__ = ["FeatureSet", "get_feature_set", "list_feature_sets", "register"]
