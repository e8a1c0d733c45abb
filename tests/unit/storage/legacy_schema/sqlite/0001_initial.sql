-- roost schema 1 (SQLite): accounts with their SCRAM credentials, and the generic
-- key-value store. Every table carries the virtual host from the first migration on.
-- Hosts and usernames are stored as given (already normalised): BINARY comparison.

CREATE TABLE accounts (
    host       TEXT    NOT NULL,
    username   TEXT    NOT NULL,
    created_at INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER)),  -- Unix time
    PRIMARY KEY (host, username)
);

-- The SCRAM secret per hash function (RFC 5802 §3): never a password.
CREATE TABLE credentials (
    host       TEXT    NOT NULL,
    username   TEXT    NOT NULL,
    hash_name  TEXT    NOT NULL,  -- "SHA-1", "SHA-256", "SHA-512"
    salt       BLOB    NOT NULL,
    iterations INTEGER NOT NULL CHECK (iterations > 0),
    stored_key BLOB    NOT NULL,
    server_key BLOB    NOT NULL,
    PRIMARY KEY (host, username, hash_name),
    FOREIGN KEY (host, username) REFERENCES accounts (host, username) ON DELETE CASCADE
);

-- Generic per-user data of modules without tables of their own (base.KeyValueStore).
-- No foreign key: the account's rows are deleted with it by AccountStore.delete().
CREATE TABLE kv (
    host     TEXT NOT NULL,
    username TEXT NOT NULL,
    store    TEXT NOT NULL,
    key      TEXT NOT NULL,
    value    BLOB NOT NULL,
    PRIMARY KEY (host, username, store, key)
);
