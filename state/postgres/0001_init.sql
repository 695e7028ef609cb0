-- Plinth state schema for PostgreSQL, version 1: the same tables as
-- state/0001_init.sql (SQLite), every one keyed by environment. Applied by
-- src/state/postgres.rs inside the schema named by the URL's `?schema=`
-- (default `plinth`), under a transaction-scoped advisory lock; the applied
-- versions are rows of `schema_version`. Values are JSON text, stored
-- verbatim (key order preserved), exactly as the SQLite store writes them.

CREATE TABLE envs (
    env        TEXT PRIMARY KEY,
    serial     BIGINT NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
);

-- One row per managed object (deposed objects awaiting deletion have a
-- non-empty `deposed`). `seq` keeps insertion order (SQLite's rowid): an
-- upsert, a depose or a move keeps it.
CREATE TABLE instances (
    env       TEXT NOT NULL,
    address   TEXT NOT NULL,
    deposed   TEXT NOT NULL DEFAULT '',
    resource  TEXT NOT NULL,
    provider  TEXT NOT NULL,
    rtype     TEXT NOT NULL,
    inputs    TEXT NOT NULL,
    attrs     TEXT NOT NULL,
    sensitive TEXT NOT NULL DEFAULT '[]',
    deps      TEXT NOT NULL DEFAULT '[]',
    serial    BIGINT NOT NULL,
    seq       BIGINT GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (env, address, deposed)
);
CREATE INDEX instances_order ON instances (env, seq);

-- The write-ahead journal: an intent is durable before its provider call and
-- completed in the same transaction that records the result.
CREATE TABLE intents (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    env          TEXT NOT NULL,
    serial       BIGINT NOT NULL,
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
CREATE INDEX intents_env_serial ON intents (env, serial);

CREATE TABLE outputs (
    env       TEXT NOT NULL,
    name      TEXT NOT NULL,
    value     TEXT NOT NULL,
    sensitive BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (env, name)
);

CREATE TABLE history (
    env         TEXT NOT NULL,
    serial      BIGINT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    command     TEXT NOT NULL,
    status      TEXT NOT NULL,
    created     BIGINT NOT NULL DEFAULT 0,
    updated     BIGINT NOT NULL DEFAULT 0,
    replaced    BIGINT NOT NULL DEFAULT 0,
    deleted     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (env, serial)
);

CREATE TABLE locks (
    env         TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    host        TEXT NOT NULL,
    pid         BIGINT NOT NULL,
    command     TEXT NOT NULL,
    acquired_at TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
