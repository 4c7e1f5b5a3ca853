-- fnhost schema 4: the instances working on the store.

CREATE TABLE servers (
    id           TEXT PRIMARY KEY,
    hostname     TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    version      TEXT NOT NULL,
    workers      INTEGER NOT NULL,
    in_flight    INTEGER NOT NULL,
    started_at   INTEGER NOT NULL, -- Unix microseconds
    heartbeat_at INTEGER NOT NULL  -- Unix microseconds
) WITHOUT ROWID;
