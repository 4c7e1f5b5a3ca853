-- fnhost schema 1: invocations and their attempts, trigger state, receipts, servers.
--
-- Every table lives in the store's schema (the search_path of its connections). Text
-- that is ordered or compared by the store (ids, function names, receipt keys) uses the
-- "C" collation: byte order, whatever the database's locale, and cheaper comparisons.
-- Events, outputs and state values are bytea: they come back byte for byte.

CREATE TABLE invocations (
    id           text COLLATE "C" NOT NULL PRIMARY KEY,
    function     text COLLATE "C" NOT NULL,
    state        text        NOT NULL,
    attempt      integer     NOT NULL DEFAULT 0,
    max_attempts integer     NOT NULL,
    trigger      text        NOT NULL DEFAULT '',
    dedup_key    text COLLATE "C" NOT NULL DEFAULT '',
    priority     integer     NOT NULL DEFAULT 0,
    run_at       timestamptz NOT NULL,
    created_at   timestamptz NOT NULL,
    started_at   timestamptz,
    finished_at  timestamptz,
    event        bytea,
    output       bytea,
    error        text,
    parent_id    text COLLATE "C",
    continuation text        NOT NULL DEFAULT '',
    lease_owner  text        NOT NULL DEFAULT '',
    lease_until  timestamptz
) WITH (fillfactor = 90);

-- Claim: the ready rows of each function in claim order (priority desc, run_at, id). A
-- claim reads, for each function it asks for, from the first ready row of that function
-- on, and merges the functions in that order; the backlog of a function it does not ask
-- for costs it nothing. Stats counts the ready rows here too.
CREATE INDEX invocations_claim ON invocations (function, priority DESC, run_at, id)
    WHERE state IN ('pending', 'scheduled');

-- Dedup: one invocation per function and key, across every instance.
CREATE UNIQUE INDEX invocations_dedup ON invocations (function, dedup_key)
    WHERE dedup_key <> '';

-- Running rows: Rescue and the running filter of List. lease_until is in no index, so
-- that a heartbeat can update its rows in place (a HOT update).
CREATE INDEX invocations_running ON invocations (id)
    WHERE state = 'running';

-- Prune: terminal rows by finish time.
CREATE INDEX invocations_finished ON invocations (finished_at)
    WHERE state IN ('succeeded', 'failed', 'cancelled');

-- List filters, newest (largest id) first. Pending rows are found by the claim index,
-- running ones above, and succeeded ones, the bulk of the table, by a scan from the
-- newest id; most transitions then cost no entry here.
CREATE INDEX invocations_state ON invocations (state, id)
    WHERE state NOT IN ('pending', 'running', 'succeeded');
CREATE INDEX invocations_function ON invocations (function, id);

-- Continuations (woken, cancelled or restored by their parent) and the parent filter of
-- List.
CREATE INDEX invocations_parent ON invocations (parent_id)
    WHERE parent_id IS NOT NULL;

CREATE TABLE attempts (
    invocation_id text COLLATE "C" NOT NULL,
    number        integer          NOT NULL,
    started_at    timestamptz      NOT NULL,
    finished_at   timestamptz      NOT NULL,
    duration_ms   double precision NOT NULL,
    outcome       text             NOT NULL,
    error         text             NOT NULL DEFAULT '',
    log           text             NOT NULL DEFAULT '',
    log_truncated boolean          NOT NULL DEFAULT false,
    owner         text             NOT NULL DEFAULT '',
    PRIMARY KEY (invocation_id, number)
);

-- Small records a trigger keeps across restarts: a cron trigger's last fired slot, a
-- poll checkpoint. value is never NULL: an unset key has no row.
CREATE TABLE state (
    key        text COLLATE "C" NOT NULL PRIMARY KEY,
    value      bytea       NOT NULL,
    updated_at timestamptz NOT NULL
);

-- One row per function and source object: the last version enqueued and the invocation
-- it became. Receipts outlive their invocations (Prune leaves them). The primary key
-- serves the lookups of Enqueue and Receipts and the key-ordered listing of ReceiptKeys.
CREATE TABLE receipts (
    function      text COLLATE "C" NOT NULL,
    key           text COLLATE "C" NOT NULL,
    version       text COLLATE "C" NOT NULL,
    invocation_id text COLLATE "C" NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (function, key)
);
