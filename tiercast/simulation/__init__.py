"""The synthetic retail world (`world`) with its analytic ground truth, and its campaign variant (`campaign`)."""
