"""The synthetic retail world (`world`), its analytic ground truth (`truth`), its files (`files`), and its
campaign variant (`campaign`)."""
