"""Training and evaluation on RAVDESS-style labelled data, always holding out whole actors."""
