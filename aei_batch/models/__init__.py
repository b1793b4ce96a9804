"""Models: the card, safe artifact formats, and the estimators."""
