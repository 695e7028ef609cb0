-- Drift reports (already redacted), one row per `plinth drift` run; the
-- same table as state/0002_drift.sql (SQLite).
CREATE TABLE drift_reports (
    id        BIGSERIAL PRIMARY KEY,
    env       TEXT NOT NULL,
    at        TEXT NOT NULL,
    serial    BIGINT NOT NULL,
    checked   BIGINT NOT NULL,
    drifted   BIGINT NOT NULL,
    unmanaged BIGINT NOT NULL,
    report    TEXT NOT NULL
);
CREATE INDEX drift_reports_env ON drift_reports (env, id);
