-- fnhost schema 5: what the dashboard reads.

-- The filter by function and state together, for the states with an index of their own
-- (those of invocations_state), newest first; and the counts per function and state of
-- Counts, read from the index alone.
CREATE INDEX invocations_function_state ON invocations (function, state, id)
    WHERE state NOT IN ('pending', 'running', 'succeeded');

-- Attempts that ended, per minute (Unix microseconds of its start, UTC) and function:
-- the throughput graph and the success rates. Complete adds to them in the transaction
-- that records the attempts; Prune drops the old minutes.
CREATE TABLE throughput (
    minute    INTEGER NOT NULL,
    function  TEXT    NOT NULL,
    succeeded INTEGER NOT NULL DEFAULT 0,
    failed    INTEGER NOT NULL DEFAULT 0,
    dead      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, function)
) WITHOUT ROWID;
