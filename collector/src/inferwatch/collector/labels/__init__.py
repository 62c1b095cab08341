"""Ground truth: posted labels, joined to predictions by id, and the performance they give."""
