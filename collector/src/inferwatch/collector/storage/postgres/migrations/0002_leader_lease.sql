-- PostgreSQL storage schema 2: the leader's lease. One row: which replica leads (holder, and
-- the server process of its leadership session), until when without a renewal (the server's
-- clock), and the epoch, raised at each change of leader. The leader's evaluations and alert
-- changes lock this row (FOR SHARE) and check their epoch in the transaction that writes them,
-- so a replica that lost the role can no longer store anything it computed as leader.
CREATE TABLE leader_lease (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    holder TEXT,
    holder_pid INTEGER,
    epoch BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
INSERT INTO leader_lease (id, holder, holder_pid, epoch, expires_at) VALUES (1, NULL, NULL, 0, '-infinity');
