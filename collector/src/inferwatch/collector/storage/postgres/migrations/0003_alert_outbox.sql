-- PostgreSQL storage schema 3: the alert outbox. Each webhook POST of an alert event, stored in
-- the transaction of the alert change it announces (the leader's fenced one), until it gets a
-- final answer: the webhook's URL and timeout, the body as its notifier made it, the
-- Idempotency-Key, the retry settings, the attempts made and when the next is due (ms since the
-- epoch). Any replica may store deliveries; the leader sends them.
CREATE TABLE alert_outbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key TEXT NOT NULL,
    alert_id BIGINT NOT NULL,
    event TEXT NOT NULL,
    url TEXT NOT NULL,
    body TEXT NOT NULL,
    timeout_seconds DOUBLE PRECISION NOT NULL,
    max_retries INTEGER NOT NULL,
    backoff_seconds DOUBLE PRECISION NOT NULL,
    max_backoff_seconds DOUBLE PRECISION NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due_ms BIGINT NOT NULL
);
CREATE INDEX alert_outbox_due ON alert_outbox (due_ms, id);
