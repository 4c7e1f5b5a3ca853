-- fnhost schema 3: the ready index per function.

-- Claim: the ready rows of each function, highest priority first, then oldest run_at,
-- then id. A claim reads, for each function it asks for, from the first ready row of
-- that function on, and merges the functions in that order: the backlog of a function
-- it does not ask for costs it nothing. A claim for every function finds the functions
-- with ready rows in this index too (one seek per function). State is in the index so
-- that choosing the rows to claim reads no table row.
CREATE INDEX invocations_claim ON invocations (function, priority DESC, run_at, id, state)
    WHERE state IN ('pending', 'scheduled');

-- The global order of schema 1 is no longer read: every claim goes through the index
-- above, and so do the counts of Stats.
DROP INDEX invocations_ready;
