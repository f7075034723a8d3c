"""The synthetic retail world (`world`), its analytic ground truth (`truth`), its files (`files`), its
invoice-line export (`line_items`), named worlds (`presets`), and its campaign variant (`campaign`)."""
