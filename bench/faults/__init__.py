"""The fault scenarios of ``bench/bench_faults.py``: each a module with ``run`` (measures, returns
a dict) and ``table`` (its section of bench/results/faults.md); ``process`` and ``worker`` are
what they share: a real collector process, and a monitored service in a process of its own."""
