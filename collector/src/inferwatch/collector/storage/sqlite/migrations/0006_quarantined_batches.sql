-- Storage schema 6: journaled batches that could not be replayed into window state are moved
-- here, with why, instead of stopping the collector from starting: kept for inspection, counted.
CREATE TABLE quarantined_batches (
    seq INTEGER PRIMARY KEY,
    window_id INTEGER NOT NULL,
    payload BLOB NOT NULL,
    reason TEXT NOT NULL,
    quarantined_ms INTEGER NOT NULL
);
