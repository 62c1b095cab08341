-- Storage schema 4: a label is stored at its prediction's first (window, batch, row), which the
-- join finds from the id: keyed so, a window's labels are read in one range and no second index
-- is written per label. Schema 3 kept that place in each label already.
CREATE TABLE labels_4 (
    window_id INTEGER NOT NULL,
    batch INTEGER NOT NULL,
    row INTEGER NOT NULL,
    label_text TEXT NOT NULL,
    label_num REAL,
    label_ms INTEGER NOT NULL,
    PRIMARY KEY (window_id, batch, row)
) WITHOUT ROWID;
-- A place has one id, so one label; were there two, the latest would count, as it does now.
INSERT INTO labels_4 (window_id, batch, row, label_text, label_num, label_ms)
    SELECT window_id, batch, row, label_text, label_num, label_ms FROM labels
    WHERE true ORDER BY label_ms
    ON CONFLICT (window_id, batch, row) DO UPDATE SET label_text = excluded.label_text,
        label_num = excluded.label_num, label_ms = excluded.label_ms;
DROP TABLE labels;
ALTER TABLE labels_4 RENAME TO labels;
