"""The storage contract: every backend runs the tests of this folder that take ``backend`` or
``storage``. What is particular to a backend (where its database lives, how a test gets a fresh
one) is here and nowhere else; a new backend adds itself to ``BACKENDS``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from inferwatch.collector.storage import Storage
from inferwatch.collector.storage.sqlite import open_sqlite


class Backend:
    """Opens one fresh database, again and again, as a collector does across restarts."""

    def __init__(self, name: str, opener: Callable[[], Storage]) -> None:
        self.name = name
        self._opener = opener
        self._opened: list[Storage] = []

    def open(self) -> Storage:
        storage = self._opener()
        self._opened.append(storage)
        return storage

    def reopen(self, storage: Storage) -> Storage:
        """``storage`` closed and its database opened again: what survives is what is stored."""
        storage.close()
        return self.open()

    def close(self) -> None:
        for storage in self._opened:
            storage.close()


def _sqlite(tmp_path: Path) -> Backend:
    return Backend("sqlite", lambda: open_sqlite(tmp_path / "contract.db"))


BACKENDS: dict[str, Callable[[Path], Backend]] = {"sqlite": _sqlite}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    made = BACKENDS[request.param](tmp_path)
    yield made
    made.close()


@pytest.fixture
def storage(backend: Backend) -> Storage:
    return backend.open()
