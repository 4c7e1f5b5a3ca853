-- fnhost schema 1: invocations and their attempts.
-- Times are INTEGER unix microseconds (UTC); events and outputs are JSON stored as BLOB.

CREATE TABLE invocations (
    id           TEXT    NOT NULL PRIMARY KEY,
    function     TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    attempt      INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    trigger      TEXT    NOT NULL DEFAULT '',
    dedup_key    TEXT    NOT NULL DEFAULT '',
    priority     INTEGER NOT NULL DEFAULT 0,
    run_at       INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER,
    event        BLOB,
    output       BLOB,
    error        TEXT,
    parent_id    TEXT,
    continuation TEXT    NOT NULL DEFAULT '',
    lease_owner  TEXT    NOT NULL DEFAULT '',
    lease_until  INTEGER
);

-- Claim: ready rows, highest priority first, then oldest run_at, then id. State and
-- function are in the index so that choosing the rows to claim reads no table row.
CREATE INDEX invocations_ready ON invocations (priority DESC, run_at, id, state, function)
    WHERE state IN ('pending', 'scheduled');

-- Dedup: one invocation per function and key.
CREATE UNIQUE INDEX invocations_dedup ON invocations (function, dedup_key)
    WHERE dedup_key <> '';

-- Running rows: Rescue (few rows: a scan of them is cheap) and the running filter of
-- List. Heartbeats do not touch it.
CREATE INDEX invocations_running ON invocations (id)
    WHERE state = 'running';

-- Prune: terminal rows by finish time.
CREATE INDEX invocations_finished ON invocations (finished_at)
    WHERE state IN ('succeeded', 'failed', 'cancelled');

-- List filters, newest (largest id) first. The state index leaves out the states every
-- invocation passes through: running rows are indexed above; pending ones are in the
-- ready index and, like succeeded ones, are found at once by a scan from the newest id
-- (pending rows are the newest, succeeded ones the bulk of the table). Most
-- transitions then cost no update of this index. A trigger filter scans by id.
CREATE INDEX invocations_state ON invocations (state, id)
    WHERE state NOT IN ('pending', 'running', 'succeeded');
CREATE INDEX invocations_function ON invocations (function, id);

-- Continuations and the parent filter of List.
CREATE INDEX invocations_parent ON invocations (parent_id, id)
    WHERE parent_id IS NOT NULL;

CREATE TABLE attempts (
    invocation_id TEXT    NOT NULL,
    number        INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,
    finished_at   INTEGER NOT NULL,
    duration_ms   REAL    NOT NULL,
    outcome       TEXT    NOT NULL,
    error         TEXT    NOT NULL DEFAULT '',
    log           TEXT    NOT NULL DEFAULT '',
    log_truncated INTEGER NOT NULL DEFAULT 0,
    owner         TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (invocation_id, number)
) WITHOUT ROWID;
