-- Plinth state schema, version 1. Every table is keyed by environment.

CREATE TABLE envs (
    env        TEXT PRIMARY KEY,
    serial     INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
);

-- One row per managed object (deposed objects awaiting deletion have a
-- non-empty `deposed`). Values are JSON; `sensitive` lists attribute names.
CREATE TABLE instances (
    env        TEXT NOT NULL,
    address    TEXT NOT NULL,
    deposed    TEXT NOT NULL DEFAULT '',
    resource   TEXT NOT NULL,
    provider   TEXT NOT NULL,
    rtype      TEXT NOT NULL,
    inputs     TEXT NOT NULL,
    attrs      TEXT NOT NULL,
    sensitive  TEXT NOT NULL DEFAULT '[]',
    deps       TEXT NOT NULL DEFAULT '[]',
    serial     INTEGER NOT NULL,
    PRIMARY KEY (env, address, deposed)
);

-- The write-ahead journal: an intent is durable before its provider call and
-- completed in the same transaction that records the result.
CREATE TABLE intents (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    env          TEXT NOT NULL,
    serial       INTEGER NOT NULL,
    address      TEXT NOT NULL,
    deposed      TEXT NOT NULL DEFAULT '',
    action       TEXT NOT NULL,
    token        TEXT NOT NULL,
    resource     TEXT NOT NULL,
    provider     TEXT NOT NULL,
    rtype        TEXT NOT NULL,
    inputs       TEXT NOT NULL,
    inputs_hash  TEXT NOT NULL,
    deps         TEXT NOT NULL DEFAULT '[]',
    sensitive    TEXT NOT NULL DEFAULT '[]',
    started_at   TEXT NOT NULL,
    completed_at TEXT,
    outcome      TEXT
);
CREATE INDEX intents_open ON intents (env) WHERE completed_at IS NULL;

CREATE TABLE outputs (
    env       TEXT NOT NULL,
    name      TEXT NOT NULL,
    value     TEXT NOT NULL,
    sensitive INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (env, name)
);

CREATE TABLE history (
    env         TEXT NOT NULL,
    serial      INTEGER NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    command     TEXT NOT NULL,
    status      TEXT NOT NULL,
    created     INTEGER NOT NULL DEFAULT 0,
    updated     INTEGER NOT NULL DEFAULT 0,
    replaced    INTEGER NOT NULL DEFAULT 0,
    deleted     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (env, serial)
);

CREATE TABLE locks (
    env         TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    command     TEXT NOT NULL,
    acquired_at TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
);
