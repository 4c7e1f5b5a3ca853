-- fnhost schema 2: the instances working on the store.

CREATE TABLE servers (
    id           text COLLATE "C" NOT NULL PRIMARY KEY,
    hostname     text        NOT NULL,
    pid          integer     NOT NULL,
    version      text        NOT NULL,
    workers      integer     NOT NULL,
    in_flight    integer     NOT NULL,
    started_at   timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL
);
