"""Where rows go: the predictions table."""
