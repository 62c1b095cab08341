"""Detection in the collector: the checks run on each window, and the levels that re-decide them."""
