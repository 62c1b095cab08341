"""What is particular to the PostgreSQL backend: its schema version, the databases it refuses,
texts PostgreSQL cannot hold as they are, a server that drops its connections, replicas
migrating at once."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from inferwatch.collector.labels.join import labelled_pairs
from inferwatch.collector.labels.reach import IdReach
from inferwatch.collector.labels.store import LabelRecord
from inferwatch.collector.settings import ConfigError
from inferwatch.collector.storage import LeadershipLost, Storage
from inferwatch.collector.storage.postgres import SCHEMA_VERSION, open_postgres
from inferwatch.collector.storage.postgres.database import Database
from inferwatch.collector.storage.postgres.leadership import LeaseLeadership
from inferwatch.collector.storage.postgres.prediction_index import Spot, first_predictions, id_keys
from inferwatch.collector.storage.postgres.schema import migrate
from inferwatch.collector.storage.postgres.windows import PostgresWindowStore
from inferwatch.collector.window.store import StorageUnavailable, StoredBatch, WindowKey
from inferwatch_testkit import closed_port, wait_for
from inferwatch_testkit.postgres import TemporaryDatabase

from .helpers import MINUTE_MS, batch, uuid7, window


def _partitions(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass('prediction_ids') ORDER BY 1"
        ).fetchall()
    return [name for (name,) in rows]


def _version(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT version FROM inferwatch_schema").fetchone()
    assert row is not None
    return int(row[0])


def test_a_database_of_a_newer_release_is_refused_and_left_as_it_is(
    postgres: TemporaryDatabase,
) -> None:
    url = postgres.new_schema()
    open_postgres(url).close()
    assert _version(url) == SCHEMA_VERSION
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE inferwatch_schema SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(ConfigError, match=f"storage schema {SCHEMA_VERSION + 1}.*newer"):
        open_postgres(url)
    assert _version(url) == SCHEMA_VERSION + 1


def test_a_schema_holding_other_tables_is_refused(postgres: TemporaryDatabase) -> None:
    url = postgres.new_schema()
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE somebody_elses (x integer)")
    with pytest.raises(ConfigError, match="holds 1 tables but no inferwatch storage schema"):
        open_postgres(url)


def test_an_unreachable_server_is_a_config_error_that_hides_the_password() -> None:
    port = closed_port().rsplit(":", 1)[1]
    with pytest.raises(
        ConfigError, match=f"cannot connect to the PostgreSQL .* 127.0.0.1:{port}"
    ) as info:
        open_postgres(f"postgresql://someone:s3cret@127.0.0.1:{port}/db")
    assert "s3cret" not in str(info.value)


def test_replicas_starting_together_migrate_once(postgres: TemporaryDatabase) -> None:
    url = postgres.new_schema()
    opened: list[Storage] = []
    failures: list[BaseException] = []

    def start(instance: str) -> None:
        try:
            opened.append(open_postgres(url, instance=instance))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=start, args=(name,)) for name in "abc"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [] and len(opened) == 3
    assert _version(url) == SCHEMA_VERSION
    for storage in opened:
        storage.close()


def test_two_live_collectors_cannot_share_an_instance_id(postgres: TemporaryDatabase) -> None:
    url = postgres.new_schema()
    first = open_postgres(url, instance="a")
    with pytest.raises(ConfigError, match="another collector runs with instance_id 'a'"):
        open_postgres(url, instance="a")
    open_postgres(url, instance="b").close()
    first.close()
    # Gone with its session: a restart takes it again.
    open_postgres(url, instance="a").close()


def test_one_collector_leads_and_another_takes_over_when_it_goes(
    postgres: TemporaryDatabase,
) -> None:
    url = postgres.new_schema()
    a, b = open_postgres(url, instance="a"), open_postgres(url, instance="b")
    assert a.leadership.holds() and not b.leadership.holds()
    assert a.leadership.holds() and not b.leadership.holds()
    a.close()
    assert b.leadership.holds()
    b.close()


@contextmanager
def _two_leases(
    postgres: TemporaryDatabase, lease_seconds: float
) -> Iterator[tuple[PostgresWindowStore, StoredBatch, LeaseLeadership, LeaseLeadership]]:
    """Leaders a (holding the role) and b on one database with one stored window; neither
    renews its lease, as a paused process does not."""
    url = postgres.new_schema()
    database = Database(url)
    migrate(database)
    windows = PostgresWindowStore(database, "a")
    a = LeaseLeadership(url, database, "a", lease_seconds=lease_seconds, renew_seconds=3600)
    b = LeaseLeadership(url, database, "b", lease_seconds=lease_seconds, renew_seconds=3600)
    try:
        (stored,) = windows.ingest([batch(b"a", window(0), ["p0"])], 0).stored
        assert stored is not None
        assert a.holds() and not b.holds()
        yield windows, stored, a, b
    finally:
        a.close()
        b.close()
        database.close()


def test_a_leader_paused_past_its_lease_loses_the_role_and_stores_nothing_as_leader(
    postgres: TemporaryDatabase,
) -> None:
    with _two_leases(postgres, lease_seconds=0.5) as (windows, stored, a, b):
        with a.fenced():
            windows.save_evaluation(stored.window_id, [], {"by": "a"}, 1, close=True)
        # a's session stays open, so only the lease running out hands the role over.
        wait_for(b.holds, timeout=10, what="b to take the expired lease")
        with pytest.raises(LeadershipLost), a.fenced():
            windows.save_evaluation(stored.window_id, [], {"by": "a, late"}, 2, close=True)
        (record,) = windows.find("m")
        assert (record.details, record.evaluated_ms) == ({"by": "a"}, 1)
        assert not a.holds() and b.holds()
        with b.fenced():
            windows.save_evaluation(stored.window_id, [], {"by": "b"}, 3, close=True)
        assert windows.find("m")[0].details == {"by": "b"}
        # Rolled back whole: a fenced block that fails stores none of its writes.
        with pytest.raises(RuntimeError), b.fenced():
            windows.save_evaluation(stored.window_id, [], {"by": "b, undone"}, 4, close=True)
            raise RuntimeError("the alert step failed")
        assert windows.find("m")[0].details == {"by": "b"}


def test_a_leader_paused_inside_a_fenced_transaction_is_cut_off_by_the_server(
    postgres: TemporaryDatabase,
) -> None:
    with _two_leases(postgres, lease_seconds=1) as (windows, stored, a, b):
        with pytest.raises((StorageUnavailable, psycopg.Error)), a.fenced():
            windows.save_evaluation(stored.window_id, [], {"by": "a"}, 1, close=True)
            # Paused here, holding the lease row: the server ends the session idle in its
            # transaction, and b takes the role.
            wait_for(b.holds, timeout=15, what="b to take the lease")
            windows.save_evaluation(stored.window_id, [], {"by": "a, late"}, 2, close=True)
        (record,) = windows.find("m")
        assert record.details is None and not record.closed


def test_a_fenced_block_cut_off_by_the_server_fails_though_it_caught_the_error(
    postgres: TemporaryDatabase,
) -> None:
    # The keeper's alerting step logs its failures and goes on: the block must fail all the
    # same, or the paused leader counts an evaluation that was rolled back as done.
    with _two_leases(postgres, lease_seconds=1) as (windows, stored, a, b):
        with pytest.raises(StorageUnavailable), a.fenced():
            windows.save_evaluation(stored.window_id, [], {"by": "a"}, 1, close=True)
            wait_for(b.holds, timeout=15, what="b to take the lease")
            with contextlib.suppress(Exception):
                windows.save_evaluation(stored.window_id, [], {"by": "a, late"}, 2, close=True)
        (record,) = windows.find("m")
        assert record.details is None and not record.closed


def test_a_leader_whose_loop_stops_beating_hands_the_lease_back_at_once(
    postgres: TemporaryDatabase,
) -> None:
    url = postgres.new_schema()
    database = Database(url)
    migrate(database)
    # A lease far longer than the wait: only the handing back lets b lead.
    a = LeaseLeadership(
        url, database, "a", lease_seconds=600, renew_seconds=0.05, stall_seconds=0.3
    )
    b = LeaseLeadership(url, database, "b", lease_seconds=600, renew_seconds=3600)
    try:
        assert a.holds() and a.last_stall is None
        epoch = a.epoch
        # Beating, a keeps the lead well past the stall bound.
        beating_until = time.monotonic() + 1.0
        while time.monotonic() < beating_until:
            a.beat()
            time.sleep(0.05)
        assert not b.holds() and a.epoch == epoch
        # Silent: a hands the lease back, b takes it, and a's writes are refused.
        wait_for(b.holds, timeout=10, what="b to take the lease a handed back")
        stall = a.last_stall
        assert stall is not None and stall.epoch == epoch and stall.seconds > 0.3
        with pytest.raises(LeadershipLost), a.fenced():
            pass
        # Its loop beating again, a follows; it would lead again were the lease free.
        a.beat()
        assert not a.holds()
        b.close()
        assert a.holds()
    finally:
        a.close()
        b.close()
        database.close()


def test_texts_with_nul_and_the_escape_character_round_trip(postgres: TemporaryDatabase) -> None:
    storage = open_postgres(postgres.new_schema())
    model, text = "m\0odel", "a\0b\ufffe\x01c\ufffe\x02\ufffe"
    (stored,) = storage.windows.ingest([batch(b"a", window(0, model=model), ["p\0"])], 0).stored
    assert stored is not None
    (record,) = storage.windows.find(model)
    assert record.model == model and storage.windows.find("m") == []
    outcome = storage.labels.apply(model, [LabelRecord("p\0", text, None)], 1_000)
    assert outcome.joined == 1
    (pair,) = labelled_pairs(storage.labels.for_window(stored.window_id))
    assert pair.label_text == text
    storage.settings.put_model_config(model, {"note": text})
    assert storage.settings.model_configs() == {model: {"note": text}}
    storage.close()


def test_a_server_that_drops_the_connections_fails_writes_for_now_only(
    postgres: TemporaryDatabase,
) -> None:
    url = postgres.new_schema()
    storage = open_postgres(url)
    storage.windows.ingest([batch(b"a", window(0), ["a0"])], 0)
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    # The pool's idle connection was cut: the write fails as retryable, storing nothing...
    with pytest.raises(StorageUnavailable):
        storage.windows.ingest([batch(b"b", window(0), ["b0"])], 0)
    # ... and the next one, on a new connection, succeeds.
    (again,) = storage.windows.ingest([batch(b"b", window(0), ["b0"])], 0).stored
    assert again is not None
    assert storage.windows.find("m")[0].requests == 2
    storage.close()


def test_a_day_dropped_by_the_prune_is_made_again_when_its_predictions_come(
    postgres: TemporaryDatabase,
) -> None:
    url = postgres.new_schema()
    storage, other = open_postgres(url, instance="a"), open_postgres(url, instance="b")
    storage.windows.ingest([batch(b"a", window(0), ["a0"])], 0)
    storage.windows.ingest([batch(b"late", window(24 * 60 + 5), ["x0", "x1"])], 0)  # day 1
    assert _partitions(url) == ["prediction_ids_d0", "prediction_ids_d1"]
    # Another replica prunes day 0 whole (its table is dropped) and cuts into day 1.
    cutoff = (24 * 60 + 3) * MINUTE_MS
    assert other.labels.prune(cutoff_ms=cutoff).predictions_deleted == 1
    assert _partitions(url) == ["prediction_ids_d1"]
    assert other.labels.prune(cutoff_ms=2 * 24 * 60 * MINUTE_MS).predictions_deleted == 2
    assert _partitions(url) == []
    (again,) = storage.windows.ingest([batch(b"b", window(1), ["b0"])], 0).stored
    assert again is not None
    assert storage.labels.apply("m", [LabelRecord("b0", "yes", None)], 1_000).joined == 1
    storage.close()
    other.close()


DAY_MINUTES = 24 * 60
# Windows of a minute: an id of time t is looked for first in windows ending within
# [t - 1 min, t + 2 min].
REACH = IdReach(before_ms=MINUTE_MS, after_ms=2 * MINUTE_MS)


def _id_of_day(day: int) -> str:
    """A UUIDv7 made at 01:00:01 of ``day``, in the window _window_of_day gives."""
    return uuid7((day * DAY_MINUTES + 60) * MINUTE_MS + 1_000, 1)


def _window_of_day(day: int) -> WindowKey:
    return window(day * DAY_MINUTES + 60)


def _partitions_probed(
    url: str, ids: list[str], reach: IdReach | None
) -> tuple[set[str], dict[bytes, tuple[Spot, bool]]]:
    """The partitions whose index the lookup of ``ids`` scanned, counted in its transaction."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT key FROM model_keys WHERE model = 'm'").fetchone()
        assert row is not None
        found = first_predictions(conn, row[0], id_keys(ids), reach)
        scanned = conn.execute(
            "SELECT relname FROM pg_stat_xact_user_tables WHERE schemaname = current_schema() "
            "AND relname LIKE 'prediction_ids_%' AND idx_scan > 0"
        ).fetchall()
    return {name for (name,) in scanned}, found


def test_a_uuid7_label_probes_only_the_partition_of_its_day(postgres: TemporaryDatabase) -> None:
    url = postgres.new_schema()
    storage = open_postgres(url)
    days = range(30)  # a month of retention: a partition a day
    storage.windows.ingest(
        [batch(f"d{day}".encode(), _window_of_day(day), [_id_of_day(day)]) for day in days], 0
    )
    assert len(_partitions(url)) == 30
    probed, found = _partitions_probed(url, [_id_of_day(12)], REACH)
    assert probed == {"prediction_ids_d12"} and len(found) == 1
    # Not stored near its time: looked for in every partition, as an id of another kind is.
    probed, found = _partitions_probed(url, [uuid7(12 * DAY_MINUTES * MINUTE_MS, 9)], REACH)
    assert len(probed) == 30 and found == {}
    probed, found = _partitions_probed(url, [_id_of_day(12), "order-1"], REACH)
    assert len(probed) == 30 and len(found) == 1
    # A reach beyond what bigint holds (max_clock_skew may be set to 1e300 s) is every day.
    probed, found = _partitions_probed(url, [_id_of_day(12)], IdReach(10**30, 10**30))
    assert len(probed) == 30 and len(found) == 1
    storage.close()


def test_a_uuid7_stored_far_from_its_time_first_counts_where_near_it(
    postgres: TemporaryDatabase,
) -> None:
    # What docs/scaling.md says differs from "the first batch counts": an id reused far from
    # its own time, stored first outside its reach, then within.
    url = postgres.new_schema()
    storage = open_postgres(url)
    reused = _id_of_day(20)
    far, near = (
        storage.windows.ingest([batch(name.encode(), _window_of_day(day), [reused])], 0).stored[0]
        for name, day in (("far", 2), ("near", 20))
    )
    assert far is not None and near is not None
    applied = storage.labels.apply("m", [LabelRecord(reused, "x", None)], 1, REACH)
    assert applied.windows == {near.window_id}
    # Without a reach every partition is probed: the first batch counts.
    applied = storage.labels.apply("m", [LabelRecord(reused, "y", None)], 2)
    assert applied.windows == {far.window_id}
    storage.close()
