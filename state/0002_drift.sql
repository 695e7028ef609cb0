-- Drift reports (already redacted), one row per `plinth drift` run.
CREATE TABLE drift_reports (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    env       TEXT NOT NULL,
    at        TEXT NOT NULL,
    serial    INTEGER NOT NULL,
    checked   INTEGER NOT NULL,
    drifted   INTEGER NOT NULL,
    unmanaged INTEGER NOT NULL,
    report    TEXT NOT NULL
);
CREATE INDEX drift_reports_env ON drift_reports (env, id);
