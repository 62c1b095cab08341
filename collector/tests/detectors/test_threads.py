"""The detectors' thread caps: every library's pool capped inside the block, restored after."""

from __future__ import annotations

from threadpoolctl import threadpool_info, threadpool_limits

from inferwatch.collector.detectors.threads import limited_threads


def _threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info()}


def test_the_cap_holds_inside_the_block_and_is_undone_after() -> None:
    with threadpool_limits(2):
        for _ in range(2):  # the second cap reuses the libraries the first found
            with limited_threads(1):
                assert _threads() == {1}
            assert _threads() == {2}
        with limited_threads(None):
            assert _threads() == {2}
