-- Storage schema 8: a span's dedupe key starts with its trace id's length (4 bytes, big-endian),
-- then the trace id and the span id. Earlier schemas keyed it by the two ids end to end, so that
-- ("aa", "bbcc") and ("aabb", "cc") shared a key and the second span was dropped as a duplicate.
-- An earlier key is split as OTLP ids are sized: the span id is its last 8 bytes (the whole key
-- if it is shorter), so the 24-byte keys of 16-byte trace and 8-byte span ids go on catching
-- their spans' retries.
CREATE TABLE seen_spans_8 (
    key BLOB PRIMARY KEY,
    seen_ms INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO seen_spans_8 (key, seen_ms) SELECT iw_dedupe_key_8(key), seen_ms FROM seen_spans;
DROP TABLE seen_spans;
ALTER TABLE seen_spans_8 RENAME TO seen_spans;
