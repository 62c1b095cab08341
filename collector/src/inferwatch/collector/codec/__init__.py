"""How the collector's values are written down: JSON-safe values (and, beside them, binary
containers)."""
