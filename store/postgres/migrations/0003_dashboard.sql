-- fnhost schema 3: what the dashboard reads.

-- The filter by function and state together, for the states with an index of their own
-- (those of invocations_state), newest first; and the counts per function and state of
-- Counts, read from the index alone.
CREATE INDEX invocations_function_state ON invocations (function, state, id)
    WHERE state NOT IN ('pending', 'running', 'succeeded');

-- Function and state are far from independent (a function's failures are its own): the
-- planner learns how they go together instead of multiplying their frequencies.
CREATE STATISTICS invocations_function_state_stats (dependencies, mcv) ON function, state FROM invocations;

-- Attempts that ended, per minute, function and shard: the throughput graph and the
-- success rates. A completion adds to the buckets of its connection's shard (its
-- backend's pid), so that concurrent completions of several instances never wait for
-- each other's rows; readers sum the shards. Prune drops the old minutes.
CREATE TABLE throughput (
    minute    timestamptz      NOT NULL,
    function  text COLLATE "C" NOT NULL,
    shard     integer          NOT NULL,
    succeeded bigint           NOT NULL DEFAULT 0,
    failed    bigint           NOT NULL DEFAULT 0,
    dead      bigint           NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, function, shard)
);
