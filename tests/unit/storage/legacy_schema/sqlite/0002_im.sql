-- roost schema 2 (SQLite): instant messaging and presence (RFC 6121): rosters with versions
-- and change history, held inbound subscription requests, offline messages (XEP-0160) and
-- block lists (XEP-0191). No foreign keys, as for kv: AccountStore.delete() removes a user's
-- rows from each of these tables (base.USER_DATA_TABLES).

-- The roster version of each user who ever had a roster (RFC 6121 §2.6): one increment per
-- put or remove. changes_since(v) can answer for oldest_version <= v <= version: tombstones of
-- versions up to oldest_version were pruned.
CREATE TABLE roster_versions (
    host           TEXT    NOT NULL,
    username       TEXT    NOT NULL,
    version        INTEGER NOT NULL CHECK (version >= 0),
    oldest_version INTEGER NOT NULL DEFAULT 0 CHECK (oldest_version >= 0),
    PRIMARY KEY (host, username)
);

-- One row per contact ever on the roster, with the version of its latest change: a removed
-- contact stays as a tombstone (removed = 1, its data cleared) so changes_since() reports it.
CREATE TABLE roster_items (
    host         TEXT    NOT NULL,
    username     TEXT    NOT NULL,
    jid          TEXT    NOT NULL,  -- the contact's bare JID
    name         TEXT,
    subscription TEXT    NOT NULL DEFAULT 'none'
                 CHECK (subscription IN ('none', 'to', 'from', 'both')),
    ask          INTEGER NOT NULL DEFAULT 0 CHECK (ask IN (0, 1)),
    approved     INTEGER NOT NULL DEFAULT 0 CHECK (approved IN (0, 1)),
    groups       TEXT    NOT NULL DEFAULT '[]',  -- a JSON array of strings, in order
    removed      INTEGER NOT NULL DEFAULT 0 CHECK (removed IN (0, 1)),
    version      INTEGER NOT NULL,
    PRIMARY KEY (host, username, jid)
);

CREATE INDEX roster_items_by_version ON roster_items (host, username, version);

-- Inbound subscription requests not yet answered (RFC 6121 §3.1.3): redelivered at login.
CREATE TABLE roster_pending_in (
    host     TEXT NOT NULL,
    username TEXT NOT NULL,
    jid      TEXT NOT NULL,  -- the requesting contact's bare JID
    stanza   BLOB NOT NULL,  -- the serialized <presence type='subscribe'/>
    PRIMARY KEY (host, username, jid)
);

-- Messages held for users without an available resource (XEP-0160). AUTOINCREMENT: an id is
-- never reused, so a late delete() of delivered ids cannot hit a newer message.
CREATE TABLE offline_messages (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    host      TEXT    NOT NULL,
    username  TEXT    NOT NULL,
    stored_at REAL    NOT NULL,  -- Unix time
    stanza    BLOB    NOT NULL
);

CREATE INDEX offline_messages_by_user ON offline_messages (host, username, id);
CREATE INDEX offline_messages_by_time ON offline_messages (stored_at);

-- Block lists (XEP-0191): JIDs as the user gave them (bare, full or domain), normalised.
CREATE TABLE blocked_jids (
    host     TEXT NOT NULL,
    username TEXT NOT NULL,
    jid      TEXT NOT NULL,
    PRIMARY KEY (host, username, jid)
);
