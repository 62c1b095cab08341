"""Making received batches durable (group commit, journal) and folding them into window state."""
