-- Storage schema 2, the oldest this release brings forward: the tables as the releases of
-- schema 2 created them (a new file starts here, then takes every later step). Schema-2 files
-- of the first such releases have no detector_states table; step 3 adds it where it is missing.
CREATE TABLE windows (
    id INTEGER PRIMARY KEY,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    closed INTEGER NOT NULL DEFAULT 0,
    requests INTEGER NOT NULL DEFAULT 0,
    rows INTEGER NOT NULL DEFAULT 0,
    labelled INTEGER NOT NULL DEFAULT 0,
    needs_eval INTEGER NOT NULL DEFAULT 0,
    results TEXT,
    details TEXT,
    evaluated_ms INTEGER,
    UNIQUE (model, version, start_ms, end_ms)
);
CREATE INDEX windows_by_state ON windows (closed, end_ms);
CREATE TABLE window_states (
    window_id INTEGER NOT NULL,
    instance TEXT NOT NULL,
    state BLOB NOT NULL,
    PRIMARY KEY (window_id, instance)
);
CREATE TABLE raw_batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    window_id INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE seen_spans (
    key BLOB PRIMARY KEY,
    seen_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE model_keys (
    key INTEGER PRIMARY KEY,
    model TEXT NOT NULL UNIQUE
);
-- The label join keeps, per stored batch, its ids and output frame (one row per span), and one
-- narrow index row per prediction id: the only per-row write of ingest. Predicted values are
-- read from the frame only for rows that get a label.
CREATE TABLE prediction_batches (
    seq INTEGER PRIMARY KEY,
    model_key INTEGER NOT NULL,
    window_id INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    ids TEXT NOT NULL,
    outputs BLOB NOT NULL
);
CREATE INDEX prediction_batches_by_window ON prediction_batches (window_id);
CREATE TABLE prediction_ids (
    model_key INTEGER NOT NULL,
    prediction_id TEXT NOT NULL,
    batch INTEGER NOT NULL,
    row INTEGER NOT NULL,
    PRIMARY KEY (model_key, prediction_id)
) WITHOUT ROWID;
CREATE TABLE labels (
    model_key INTEGER NOT NULL,
    prediction_id TEXT NOT NULL,
    window_id INTEGER NOT NULL,
    batch INTEGER NOT NULL,
    row INTEGER NOT NULL,
    label_text TEXT NOT NULL,
    label_num REAL,
    label_ms INTEGER NOT NULL,
    PRIMARY KEY (model_key, prediction_id)
) WITHOUT ROWID;
CREATE INDEX labels_by_window ON labels (window_id);
CREATE TABLE pending_labels (
    model TEXT NOT NULL,
    prediction_id TEXT NOT NULL,
    value_text TEXT NOT NULL,
    value_num REAL,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (model, prediction_id)
) WITHOUT ROWID;
CREATE TABLE label_counters (
    model TEXT NOT NULL,
    name TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (model, name)
);
CREATE TABLE uploads (
    upload_id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    task TEXT,
    created_ms INTEGER NOT NULL
);
CREATE TABLE upload_parts (
    upload_id TEXT NOT NULL,
    part INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (upload_id, part)
);
CREATE TABLE reference_profiles (
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    source TEXT NOT NULL,
    rows INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    profile BLOB NOT NULL,
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
    state BLOB NOT NULL,
    PRIMARY KEY (model, version, name)
) WITHOUT ROWID;
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    check_name TEXT NOT NULL,
    severity TEXT NOT NULL,
    state TEXT NOT NULL,
    opened_ms INTEGER NOT NULL,
    resolved_ms INTEGER,
    updated_ms INTEGER NOT NULL,
    message TEXT NOT NULL,
    window_id INTEGER NOT NULL,
    last_window_id INTEGER NOT NULL,
    evidence TEXT NOT NULL
);
CREATE INDEX alerts_by_model ON alerts (model, state);
-- At most one open alert per check, and the engine's load reads just these.
CREATE UNIQUE INDEX alerts_open ON alerts (model, version, check_name)
    WHERE state = 'open';
CREATE TABLE alert_checks (
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    check_name TEXT NOT NULL,
    history TEXT NOT NULL,
    PRIMARY KEY (model, version, check_name)
) WITHOUT ROWID;
