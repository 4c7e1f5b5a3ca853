-- fnhost schema 2: trigger state and receipts.

-- Small records a trigger keeps across restarts: a cron trigger's last fired slot, a
-- poll checkpoint. value is never NULL: an unset key has no row.
CREATE TABLE state (
    key        TEXT    NOT NULL PRIMARY KEY,
    value      BLOB    NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- One row per function and source object (file path, bucket and key): the last version
-- enqueued and the invocation it became. Receipts outlive their invocations (Prune
-- leaves them), so that an object is not submitted again once its invocation is gone.
-- The primary key serves the lookups of Enqueue and Receipts and the key-ordered
-- listing by prefix of ReceiptKeys.
CREATE TABLE receipts (
    function      TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    version       TEXT    NOT NULL,
    invocation_id TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (function, key)
) WITHOUT ROWID;
