-- Storage schema 9: the alert outbox. Each webhook POST of an alert event, stored in the
-- transaction of the alert change it announces, until it gets a final answer: the webhook's
-- URL and timeout, the body as its notifier made it, the Idempotency-Key, the retry settings,
-- the attempts made and when the next is due (ms since the epoch). AUTOINCREMENT: an id is
-- never reused, so a delivery being sent is never confused with a newer one.
CREATE TABLE alert_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL,
    alert_id INTEGER NOT NULL,
    event TEXT NOT NULL,
    url TEXT NOT NULL,
    body TEXT NOT NULL,
    timeout_seconds REAL NOT NULL,
    max_retries INTEGER NOT NULL,
    backoff_seconds REAL NOT NULL,
    max_backoff_seconds REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due_ms INTEGER NOT NULL
);
CREATE INDEX alert_outbox_due ON alert_outbox (due_ms, id);
