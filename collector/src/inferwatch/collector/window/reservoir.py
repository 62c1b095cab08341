"""A uniform, mergeable reservoir of whole rows.

Detectors that look at several features at once (a classifier two-sample test, an outlier
model) need rows, not per-column summaries. The reservoir keeps a uniform random sample of at
most ``capacity`` rows of a stream, each row whole: its numeric features, categorical features,
outputs and prediction id stay aligned. Two reservoirs of parts of a stream merge into a uniform
sample of the union. docs/windows-and-summaries.md describes the algorithm.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from inferwatch.collector.codec import RESERVOIR
from inferwatch.collector.window.draws import row_draws
from inferwatch.collector.window.summaries import ColumnKey, batch_columns, batch_rows
from inferwatch.frame import (
    CategoricalColumn,
    Column,
    Frame,
    NumericBlock,
    Role,
    decode_frame,
    encode_frame,
)

DEFAULT_CAPACITY = 10_000

# numpy's hypergeometric sampler takes populations below 1e9 on each side.
_HYPERGEOMETRIC_LIMIT = 10**9
_CODES = np.int32


@dataclass(slots=True)
class _Plan:
    """Where the columns of one frame schema go in the reservoir (built once per schema)."""

    # (column index, positions within the block or None for all, reservoir numeric columns)
    numeric: list[tuple[int, np.ndarray | None, slice | np.ndarray]]
    # (column index, reservoir categorical column)
    categorical: list[tuple[int, int]]


class Reservoir:
    """A uniform sample of at most ``capacity`` whole rows of a stream.

    Rows are offered batch by batch with Algorithm R: the t-th row (0-based) takes a slot when
    t < capacity, and otherwise replaces a uniformly drawn slot j when j = floor(u * (t + 1)) <
    capacity, one uniform u per row, so the sample does not depend on how the stream was cut
    into batches. Each u is a hash of the row's values and position (``window.draws``; ``seed``
    salts it), so the same stream is sampled alike wherever it is sent.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY, seed: int | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"a reservoir's capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.seen = 0
        self._size = 0
        self._salt = seed or 0
        # Merges draw with it, reseeded from both sides' rows (see merge).
        self._rng = np.random.default_rng(seed)
        self._numeric_keys: list[ColumnKey] = []
        self._categorical_keys: list[ColumnKey] = []
        # key -> (numeric?, column in that kind's array)
        self._index: dict[ColumnKey, tuple[bool, int]] = {}
        self._numeric = np.empty((0, 0), np.float64)
        self._codes = np.empty((0, 0), _CODES)
        self._categories: list[list[str]] = []
        self._category_codes: list[dict[str, int]] = []
        self._ids = np.empty(0, dtype=object)
        self._plans: dict[tuple[Any, ...], _Plan] = {}

    @property
    def size(self) -> int:
        """Rows held: min(seen, capacity)."""
        return self._size

    def add(
        self,
        frame: Frame | None,
        outputs: Frame | None = None,
        ids: Sequence[str] | None = None,
    ) -> None:
        """Offer a batch; ``frame`` columns keep their roles, ``outputs`` columns become outputs.

        A column arriving as the other kind than it first did (strings for numbers) is left
        missing in the kept rows; so are columns a batch lacks.
        """
        rows = batch_rows(frame, outputs)
        if not rows:
            return
        if ids is not None and len(ids) != rows:
            raise ValueError(f"a batch of {rows} rows came with {len(ids)} prediction ids")
        columns, roles = batch_columns(frame, outputs)
        stream = self.seen + np.arange(rows, dtype=np.int64)
        slots = stream.copy()
        # Rows before the capacity take their own slot: only later ones need a draw.
        late = np.flatnonzero(stream >= self.capacity)
        if late.size:
            draws = row_draws(columns, roles, late, stream[late], self._salt)
            slots[late] = (draws * (stream[late] + 1)).astype(np.int64)
        self.seen += rows
        taken = np.flatnonzero(slots < self.capacity)
        if not taken.size:
            return
        slots = slots[taken]
        if taken.size > 1 and stream[-1] >= self.capacity:
            # A slot drawn twice in one batch keeps its later row, as sequential R would.
            _, last = np.unique(slots[::-1], return_index=True)
            keep = np.sort(taken.size - 1 - last)
            taken, slots = taken[keep], slots[keep]
        self._ensure_rows(int(slots.max()) + 1)
        self._write(columns, roles, taken, slots)
        kept = np.full(taken.size, None, dtype=object)
        if ids is not None:
            # Only the taken ids: once the reservoir is full they are a small part of a batch.
            kept[:] = [ids[i] for i in taken.tolist()]
        self._ids[slots] = kept
        self._size = min(self.seen, self.capacity)

    def _write(
        self, columns: Sequence[Column], roles: Sequence[Role], taken: np.ndarray, slots: np.ndarray
    ) -> None:
        signature = tuple(
            (type(c), c.name, r, c.names if isinstance(c, NumericBlock) else None)
            + ((c.width,) if isinstance(c, NumericBlock) else ())
            for c, r in zip(columns, roles, strict=True)
        )
        plan = self._plans.get(signature)
        if plan is None:
            plan = self._plans[signature] = self._plan(columns, roles)
        self._numeric[slots] = np.nan
        self._codes[slots] = -1
        for index, positions, targets in plan.numeric:
            block = columns[index]
            assert isinstance(block, NumericBlock)
            values = block.values[taken]
            if positions is not None:
                values = values[:, positions]
            if isinstance(targets, slice):
                self._numeric[slots, targets] = values
            else:
                self._numeric[slots[:, None], targets[None, :]] = values
        for index, target in plan.categorical:
            column = columns[index]
            assert isinstance(column, CategoricalColumn)
            self._codes[slots, target] = self._recode(target, column, column.codes[taken])

    def _plan(self, columns: Sequence[Column], roles: Sequence[Role]) -> _Plan:
        numeric: list[tuple[int, np.ndarray | None, slice | np.ndarray]] = []
        categorical: list[tuple[int, int]] = []
        for index, (column, role) in enumerate(zip(columns, roles, strict=True)):
            if isinstance(column, NumericBlock):
                positions: list[int] = []
                targets: list[int] = []
                for j, name in enumerate(column.feature_names()):
                    target = self._column((role, name), numeric=True)
                    if target is not None:
                        positions.append(j)
                        targets.append(target)
                if positions:
                    whole = positions == list(range(column.width))
                    run = targets == list(range(targets[0], targets[0] + len(targets)))
                    numeric.append(
                        (
                            index,
                            None if whole else np.asarray(positions),
                            slice(targets[0], targets[-1] + 1) if run else np.asarray(targets),
                        )
                    )
            else:
                target = self._column((role, column.name), numeric=False)
                if target is not None:
                    categorical.append((index, target))
        self._widen()
        return _Plan(numeric, categorical)

    def _column(self, key: ColumnKey, *, numeric: bool) -> int | None:
        """The key's column in its kind's array, registered if new (``_widen`` then makes room
        for it); None if it is the other kind."""
        if key in self._index:
            is_numeric, column = self._index[key]
            return column if is_numeric == numeric else None
        if numeric:
            column = len(self._numeric_keys)
            self._numeric_keys.append(key)
        else:
            column = len(self._categorical_keys)
            self._categorical_keys.append(key)
            self._categories.append([])
            self._category_codes.append({})
        self._index[key] = (numeric, column)
        return column

    def _widen(self) -> None:
        """Give the arrays a column for each registered key, all new ones in one copy: a frame
        of thousands of new features then costs one copy of the sample, not one per feature."""
        rows = self._numeric.shape[0]
        missing = len(self._numeric_keys) - self._numeric.shape[1]
        if missing:
            self._numeric = np.hstack((self._numeric, np.full((rows, missing), np.nan)))
        missing = len(self._categorical_keys) - self._codes.shape[1]
        if missing:
            self._codes = np.hstack((self._codes, np.full((rows, missing), -1, _CODES)))

    def _recode(self, target: int, column: CategoricalColumn, codes: np.ndarray) -> np.ndarray:
        """The batch's codes as codes into this reservoir's categories for the column."""
        if len(self._categories[target]) > 4 * self.capacity:
            self._compact(target)
        names, known = self._categories[target], self._category_codes[target]
        used = np.unique(codes)
        mapping = np.full(len(column.categories) + 1, -1, _CODES)  # last entry: missing (-1)
        for code in used[used >= 0].tolist():
            name = column.categories[code]
            mine = known.get(name)
            if mine is None:
                mine = known[name] = len(names)
                names.append(name)
            mapping[code] = mine
        return mapping[codes]

    def _compact(self, target: int) -> None:
        # Names of evicted rows linger in the dictionary; drop them once it grows large.
        codes = self._codes[: self._size, target]
        used = np.unique(codes[codes >= 0])
        remap = np.full(len(self._categories[target]) + 1, -1, _CODES)
        remap[used] = np.arange(used.size, dtype=_CODES)
        self._codes[: self._size, target] = remap[codes]
        self._categories[target] = [self._categories[target][c] for c in used.tolist()]
        self._category_codes[target] = {n: i for i, n in enumerate(self._categories[target])}

    def _ensure_rows(self, rows: int) -> None:
        have = self._numeric.shape[0]
        if rows <= have:
            return
        grown = min(self.capacity, max(rows, 2 * have, 64))
        extra = grown - have
        self._numeric = np.vstack(
            (self._numeric, np.full((extra, len(self._numeric_keys)), np.nan))
        )
        self._codes = np.vstack(
            (self._codes, np.full((extra, len(self._categorical_keys)), -1, _CODES))
        )
        self._ids = np.concatenate((self._ids, np.full(extra, None, dtype=object)))

    def merge(self, other: Reservoir) -> None:
        """Become a uniform sample of both streams.

        How many rows come from each side is drawn from the hypergeometric distribution of
        ``min(capacity, seen_a + seen_b)`` draws from the two streams' rows; then that many rows
        are drawn uniformly from each side's sample.
        """
        if other.capacity != self.capacity:
            raise ValueError(
                f"reservoirs of capacities {self.capacity} and {other.capacity} cannot merge"
            )
        total = self.seen + other.seen
        take = min(self.capacity, total)
        # Seeded by both samples' rows, so the same parts always merge into the same sample.
        self._rng = np.random.default_rng([self._salt, self._rows_key(), other._rows_key()])
        mine = self._hypergeometric(self.seen, other.seen, take)
        own_rows = np.sort(self._rng.choice(self._size, mine, replace=False))
        their_rows = np.sort(self._rng.choice(other._size, take - mine, replace=False))
        mine_frame, their_frame = self._frame_rows(own_rows), other._frame_rows(their_rows)
        mine_ids, their_ids = self._ids[own_rows], other._ids[their_rows]
        # Refill from scratch: both parts' rows, keyed by name, in a fresh layout.
        self.seen, self._size = 0, 0
        self._ensure_rows(take)
        self._numeric[:take] = np.nan
        self._codes[:take] = -1
        for frame, ids, start in (
            (mine_frame, mine_ids, 0),
            (their_frame, their_ids, mine),
        ):
            columns, roles = batch_columns(frame, None)
            positions = np.arange(frame.rows)
            self._write(columns, roles, positions, start + positions)
            self._ids[start : start + frame.rows] = ids
        self._size, self.seen = take, total

    def _rows_key(self) -> int:
        """A 64-bit digest of the kept rows (values only, not ids) and of the rows seen."""
        digest = hashlib.blake2b(encode_frame(self.to_frame()), digest_size=8)
        digest.update(self.seen.to_bytes(8, "little"))
        return int.from_bytes(digest.digest(), "little")

    def _hypergeometric(self, good: int, bad: int, draws: int) -> int:
        if not good or not bad:
            return draws if good else 0
        if good < _HYPERGEOMETRIC_LIMIT and bad < _HYPERGEOMETRIC_LIMIT:
            return int(self._rng.hypergeometric(good, bad, draws))
        # Populations this large make draws without replacement indistinguishable from draws
        # with it (the correction factor is 1 - draws / population).
        return int(min(self._rng.binomial(draws, good / (good + bad)), min(good, draws)))

    def numeric(self, role: Role = "feature") -> tuple[np.ndarray, tuple[str, ...]]:
        """The kept rows' numeric columns of ``role``: a (size, d) float matrix and the names."""
        picks = [i for i, (r, _) in enumerate(self._numeric_keys) if r == role]
        names = tuple(self._numeric_keys[i][1] for i in picks)
        return self._numeric[: self._size][:, picks], names

    def categorical(self, name: str, role: Role = "feature") -> CategoricalColumn | None:
        """The kept rows' values of one categorical column (codes -1 where missing)."""
        is_numeric, target = self._index.get((role, name), (True, -1))
        if is_numeric:
            return None
        return CategoricalColumn(
            name,
            self._codes[: self._size, target].copy(),
            tuple(self._categories[target]),
            role,
        )

    @property
    def ids(self) -> tuple[str | None, ...]:
        """The kept rows' prediction ids, aligned with the other accessors (None if unknown)."""
        return tuple(self._ids[: self._size].tolist())

    def to_frame(self) -> Frame:
        """The kept rows as a frame: one numeric block per role, each categorical column."""
        return self._frame_rows(np.arange(self._size))

    def _frame_rows(self, rows: np.ndarray) -> Frame:
        columns: list[Column] = []
        roles = dict.fromkeys(r for r, _ in self._numeric_keys)
        for role in roles:
            picks = [i for i, (r, _) in enumerate(self._numeric_keys) if r == role]
            values = np.ascontiguousarray(self._numeric[rows][:, picks])
            names = tuple(self._numeric_keys[i][1] for i in picks)
            columns.append(NumericBlock(role, values, names, role))
        for target, (role, name) in enumerate(self._categorical_keys):
            codes = self._codes[rows, target]
            used = np.unique(codes[codes >= 0])
            remap = np.full(len(self._categories[target]) + 1, -1, _CODES)
            remap[used] = np.arange(used.size, dtype=_CODES)
            categories = tuple(self._categories[target][c] for c in used.tolist())
            columns.append(CategoricalColumn(name, remap[codes], categories, role))
        return Frame(int(rows.size), tuple(columns))

    def to_bytes(self) -> bytes:
        """The stored form (codec.RESERVOIR): a JSON header (capacity, rows seen, the
        generator's state, the ids) and the kept rows as a frame."""
        header = json.dumps(
            {
                "capacity": self.capacity,
                "seen": self.seen,
                "rng": self._rng.bit_generator.state,
                "salt": self._salt,
                "ids": self._ids[: self._size].tolist(),
            },
            separators=(",", ":"),
        ).encode()
        return RESERVOIR.encode(header, encode_frame(self.to_frame()))

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> Reservoir:
        """Read ``to_bytes()`` of this or an earlier release; ContainerError if it is not one."""
        header_part, frame_part = RESERVOIR.decode(data).parts
        with RESERVOIR.reading():
            header = json.loads(bytes(header_part))
            frame = decode_frame(frame_part)
            reservoir = cls(int(header["capacity"]), seed=int(header.get("salt", 0)))
            reservoir._rng.bit_generator.state = header["rng"]
            ids = header["ids"]
            if len(ids) != frame.rows or frame.rows > reservoir.capacity:
                raise RESERVOIR.corrupt(
                    f"{len(ids)} ids for {frame.rows} rows, of capacity {reservoir.capacity}"
                )
            seen = int(header["seen"])
        positions = np.arange(frame.rows)
        reservoir._ensure_rows(frame.rows)
        columns, roles = batch_columns(frame, None)
        reservoir._write(columns, roles, positions, positions)
        reservoir._ids[: frame.rows] = np.asarray(ids, dtype=object)
        reservoir._size = frame.rows
        reservoir.seen = seen
        return reservoir
