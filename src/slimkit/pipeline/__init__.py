"""Steps 1, 3 and 4 put together: recipes, the engine that runs them, candidates measured the
same way, selection, and the search behind ``slimkit optimize``."""
