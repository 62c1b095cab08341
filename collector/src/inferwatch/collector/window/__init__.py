"""Tumbling windows per model version: exact mergeable summaries, a row reservoir, latency."""
