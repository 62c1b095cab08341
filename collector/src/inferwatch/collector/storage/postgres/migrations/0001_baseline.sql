-- PostgreSQL storage schema 1: the tables of SQLite's schema 8, shaped for several collector
-- replicas writing at once. Each replica journals its own batches (raw_batches.instance) and
-- checkpoints its own share of window state; names and label texts are text, JSON documents
-- are text (they may hold \u0000, which jsonb refuses), ids and blobs are bytea.
CREATE TABLE windows (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    start_ms BIGINT NOT NULL,
    end_ms BIGINT NOT NULL,
    closed BOOLEAN NOT NULL DEFAULT false,
    requests BIGINT NOT NULL DEFAULT 0,
    rows BIGINT NOT NULL DEFAULT 0,
    labelled BIGINT NOT NULL DEFAULT 0,
    needs_eval BIGINT NOT NULL DEFAULT 0,
    results TEXT,
    details TEXT,
    evaluated_ms BIGINT,
    UNIQUE (model, version, start_ms, end_ms)
);
CREATE INDEX windows_by_state ON windows (closed, end_ms);
CREATE INDEX windows_by_model ON windows (model, version, start_ms);
CREATE TABLE window_states (
    window_id BIGINT NOT NULL,
    instance TEXT NOT NULL,
    state BYTEA NOT NULL,
    PRIMARY KEY (window_id, instance)
);
-- The journal: each replica's stored batches not yet covered by its checkpoint.
CREATE TABLE raw_batches (
    seq BIGINT PRIMARY KEY,
    instance TEXT NOT NULL,
    window_id BIGINT NOT NULL,
    payload BYTEA NOT NULL
);
CREATE INDEX raw_batches_by_instance ON raw_batches (instance, seq);
CREATE INDEX raw_batches_by_window ON raw_batches (window_id);
-- Shared by the journal and the label join's batches: one number per stored batch.
CREATE SEQUENCE batch_seq;
CREATE TABLE quarantined_batches (
    seq BIGINT PRIMARY KEY,
    window_id BIGINT NOT NULL,
    payload BYTEA NOT NULL,
    reason TEXT NOT NULL,
    quarantined_ms BIGINT NOT NULL
);
CREATE TABLE seen_spans (
    key BYTEA PRIMARY KEY,
    seen_ms BIGINT NOT NULL
);
CREATE INDEX seen_spans_by_time ON seen_spans (seen_ms);
CREATE TABLE model_keys (
    key INTEGER GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model TEXT NOT NULL UNIQUE
);
-- The label join: per stored batch its output frame, and one index row per prediction id.
CREATE TABLE prediction_batches (
    seq BIGINT PRIMARY KEY,
    model_key INTEGER NOT NULL,
    window_id BIGINT NOT NULL,
    ts_ms BIGINT NOT NULL,
    outputs BYTEA NOT NULL
);
CREATE INDEX prediction_batches_by_window ON prediction_batches (window_id);
-- Partitioned by the end of the prediction's window, one partition a day (prediction_index.py
-- makes them as ingest needs them): retention drops whole partitions. An id's key is a tag byte
-- then its 16 bytes (a canonical UUID) or its UTF-8 text. No key is unique: an id in several
-- batches (or twice in one) has a row each, and its first (lowest batch, then row) counts.
CREATE TABLE prediction_ids (
    model_key INTEGER NOT NULL,
    id_key BYTEA NOT NULL,
    window_end_ms BIGINT NOT NULL,
    batch BIGINT NOT NULL,
    row INTEGER NOT NULL
) PARTITION BY RANGE (window_end_ms);
CREATE INDEX prediction_ids_by_key ON prediction_ids (model_key, id_key);
-- A label sits at its prediction's first (window, batch, row).
CREATE TABLE labels (
    window_id BIGINT NOT NULL,
    batch BIGINT NOT NULL,
    row INTEGER NOT NULL,
    label_text TEXT NOT NULL,
    label_num DOUBLE PRECISION,
    label_ms BIGINT NOT NULL,
    PRIMARY KEY (window_id, batch, row)
);
CREATE TABLE pending_labels (
    model TEXT NOT NULL,
    id_key BYTEA NOT NULL,
    value_text TEXT NOT NULL,
    value_num DOUBLE PRECISION,
    received_ms BIGINT NOT NULL,
    PRIMARY KEY (model, id_key)
);
CREATE INDEX pending_labels_by_time ON pending_labels (received_ms);
CREATE TABLE label_counters (
    model TEXT NOT NULL,
    name TEXT NOT NULL,
    value BIGINT NOT NULL,
    PRIMARY KEY (model, name)
);
CREATE TABLE uploads (
    upload_id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    task TEXT,
    created_ms BIGINT NOT NULL
);
CREATE TABLE upload_parts (
    upload_id TEXT NOT NULL,
    part INTEGER NOT NULL,
    rows BIGINT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (upload_id, part)
);
CREATE TABLE reference_profiles (
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    source TEXT NOT NULL,
    rows BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    profile BYTEA NOT NULL,
    details TEXT NOT NULL,
    PRIMARY KEY (model, version)
);
CREATE TABLE model_configs (
    model TEXT PRIMARY KEY,
    settings TEXT NOT NULL
);
CREATE TABLE detector_states (
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    name TEXT NOT NULL,
    state BYTEA NOT NULL,
    PRIMARY KEY (model, version, name)
);
CREATE TABLE alerts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    check_name TEXT NOT NULL,
    severity TEXT NOT NULL,
    state TEXT NOT NULL,
    opened_ms BIGINT NOT NULL,
    resolved_ms BIGINT,
    updated_ms BIGINT NOT NULL,
    message TEXT NOT NULL,
    window_id BIGINT NOT NULL,
    last_window_id BIGINT NOT NULL,
    evidence TEXT NOT NULL,
    findings TEXT NOT NULL DEFAULT '[]',
    resolution TEXT,
    acknowledged_ms BIGINT,
    acknowledged_by TEXT,
    silenced_until_ms BIGINT,
    withheld TEXT,
    notified_ms BIGINT
);
CREATE INDEX alerts_by_model ON alerts (model, state);
-- At most one open alert per check.
CREATE UNIQUE INDEX alerts_open ON alerts (model, version, check_name) WHERE state = 'open';
CREATE TABLE alert_checks (
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    check_name TEXT NOT NULL,
    history TEXT NOT NULL,
    PRIMARY KEY (model, version, check_name)
);
