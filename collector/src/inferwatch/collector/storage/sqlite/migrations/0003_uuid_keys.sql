-- Storage schema 3: a prediction id that is a canonical lower-case UUID is keyed by its 16 bytes
-- (iw_uuid_key), a batch's ids may be kept as such keys end to end (so ids becomes a BLOB), and
-- a batch of UUIDs of one millisecond is indexed by the range of its keys (prediction_ranges).
-- Batches stored before keep their ids as JSON text and their index rows one per id, as schema 3
-- keeps any batch that is not all UUIDs. The journal's batches move from the IWJ1 layout to IWJ2
-- (iw_journal_iwj2).

-- Missing from schema-2 files of the first releases that had schema 2.
CREATE TABLE IF NOT EXISTS detector_states (
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    name TEXT NOT NULL,
    state BLOB NOT NULL,
    PRIMARY KEY (model, version, name)
) WITHOUT ROWID;

CREATE TABLE prediction_batches_3 (
    seq INTEGER PRIMARY KEY,
    model_key INTEGER NOT NULL,
    window_id INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    ids BLOB NOT NULL,
    outputs BLOB NOT NULL
);
INSERT INTO prediction_batches_3 (seq, model_key, window_id, ts_ms, ids, outputs)
    SELECT seq, model_key, window_id, ts_ms, ids, outputs FROM prediction_batches;
DROP TABLE prediction_batches;
ALTER TABLE prediction_batches_3 RENAME TO prediction_batches;
CREATE INDEX prediction_batches_by_window ON prediction_batches (window_id);

CREATE TABLE prediction_ranges (
    model_key INTEGER NOT NULL,
    ms INTEGER NOT NULL,
    first_key BLOB NOT NULL,
    last_key BLOB NOT NULL,
    batch INTEGER NOT NULL,
    PRIMARY KEY (model_key, ms, first_key, batch)
) WITHOUT ROWID;

CREATE TABLE prediction_ids_3 (
    model_key INTEGER NOT NULL,
    id_key BLOB NOT NULL,
    batch INTEGER NOT NULL,
    row INTEGER NOT NULL,
    PRIMARY KEY (model_key, id_key)
) WITHOUT ROWID;
INSERT INTO prediction_ids_3 (model_key, id_key, batch, row)
    SELECT model_key, iw_uuid_key(prediction_id), batch, row FROM prediction_ids;
DROP TABLE prediction_ids;
ALTER TABLE prediction_ids_3 RENAME TO prediction_ids;

CREATE TABLE labels_3 (
    model_key INTEGER NOT NULL,
    id_key BLOB NOT NULL,
    window_id INTEGER NOT NULL,
    batch INTEGER NOT NULL,
    row INTEGER NOT NULL,
    label_text TEXT NOT NULL,
    label_num REAL,
    label_ms INTEGER NOT NULL,
    PRIMARY KEY (model_key, id_key)
) WITHOUT ROWID;
INSERT INTO labels_3 (model_key, id_key, window_id, batch, row, label_text, label_num, label_ms)
    SELECT model_key, iw_uuid_key(prediction_id), window_id, batch, row, label_text, label_num,
        label_ms
    FROM labels;
DROP TABLE labels;
ALTER TABLE labels_3 RENAME TO labels;
CREATE INDEX labels_by_window ON labels (window_id);

UPDATE raw_batches SET payload = iw_journal_iwj2(payload);
