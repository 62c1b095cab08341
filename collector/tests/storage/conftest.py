"""The storage contract: every backend runs the tests of this folder that take ``backend`` or
``storage``. What is particular to a backend (where its database lives, how a test gets a fresh
one) is here and nowhere else; a new backend adds itself to ``BACKENDS``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from inferwatch.collector.storage import Storage
from inferwatch.collector.storage.postgres import open_postgres
from inferwatch.collector.storage.sqlite import open_sqlite
from inferwatch_testkit.postgres import TemporaryDatabase


class Backend:
    """Opens one fresh database, again and again, as a collector does across restarts."""

    def __init__(self, name: str, opener: Callable[[], Storage]) -> None:
        self.name = name
        self._opener = opener
        self._opened: list[Storage] = []

    def open(self) -> Storage:
        """The database opened again, as a restarted collector opens it: the previous
        collector (any storage opened before) is gone."""
        self.close()
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
        self._opened.clear()


def _sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return Backend("sqlite", lambda: open_sqlite(tmp_path / "contract.db"))


def _postgresql(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    # One database for the run (the session's ``postgres`` fixture), a new schema per test:
    # creating a schema costs far less than creating a database.
    database: TemporaryDatabase = request.getfixturevalue("postgres")
    url = database.new_schema()
    return Backend("postgresql", lambda: open_postgres(url))


BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], Backend]] = {
    "sqlite": _sqlite,
    "postgresql": _postgresql,
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    made = BACKENDS[request.param](request, tmp_path)
    yield made
    made.close()


@pytest.fixture
def storage(backend: Backend) -> Storage:
    return backend.open()
