"""float_block: rows of plain numbers read from marshal's bytes, and everything else refused.

test_capture checks that capture_inputs makes the general path's frame whichever way it goes;
these check which rows this path takes, and that what it reads is each value exactly.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from inferwatch.columns import float_block


def test_rows_of_floats_are_read_exactly() -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(size=(1000, 20))
    values[3, 4] = np.nan
    values[5, 6] = np.inf
    values[7, 8] = -0.0
    block = float_block([tuple(row) for row in values.tolist()], 20)
    assert block is not None
    assert block.dtype == np.float64 and block.flags.c_contiguous
    np.testing.assert_array_equal(block, values)
    assert np.signbit(block[7, 8])


def test_columns_of_ints_bools_and_floats() -> None:
    rows = [(i, i * 0.5, i % 2 == 0, -(2**31) + i) for i in range(100)]
    block = float_block(rows, 4)
    assert block is not None
    np.testing.assert_array_equal(block, np.array(rows, dtype=np.float64))


@pytest.mark.parametrize(
    "rows",
    [
        [(1.0, 2.0), (1.0, None)],  # a missing value
        [(1.0, 2.0), (1.0, "x")],  # a string
        [(1.0, 2.0), (1.0, 2**31)],  # an int beyond 32 bits
        [(1.0, 2), (3, 4.0)],  # the kinds swap places: rows of the same length
        [(1, 2.0), (1.5, 2.0)],  # an int column turns float
        [(True, 2.0), (1, 2.0)],  # a bool column turns int
        [(1.0, 2.0), (Decimal(1), 2.0)],  # refused by marshal
        [(1.0, np.float64(2.0))],  # a float subclass
        [(1.0, np.array([2.0]))],
        [(1.0, (2.0,))],
        [(1.0, 2.0, 3.0)],  # wider than said
    ],
)
def test_anything_else_is_left_to_the_caller(rows: list[tuple[object, ...]]) -> None:
    assert float_block(rows, 2) is None


def test_no_rows_or_no_columns() -> None:
    assert float_block([], 3) is None
    assert float_block([()], 0) is None
