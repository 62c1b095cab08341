"""Caps on the BLAS and OpenMP threads of a detector's numerical work.

threadpoolctl's ``threadpool_limits`` finds the loaded libraries anew on every call, by reading
the process's memory maps: 3 ms, a tenth of a CBPE window's estimate. One controller finds them
once, at the first cap; the libraries a detector uses (numpy's and scipy's BLAS, scikit-learn's
OpenMP) are loaded by then, since importing the detectors imports them.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from functools import cache
from typing import Any

from threadpoolctl import ThreadpoolController


@cache
def _controller() -> ThreadpoolController:
    return ThreadpoolController()


def limited_threads(n_threads: int | None) -> AbstractContextManager[Any]:
    """At most ``n_threads`` threads in each library's pool inside the block (None: no cap)."""
    return _controller().limit(limits=n_threads)
