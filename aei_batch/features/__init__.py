"""Feature extractors, each a named, versioned set with a parameter hash."""

from aei_batch.features.base import FeatureSet, get_feature_set, list_feature_sets

__all__ = ["FeatureSet", "get_feature_set", "list_feature_sets"]
