-- Vizier-style studies and their trials, keyed by the study's full name; trials are numbered within
-- their study.
CREATE TABLE studies (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    project    TEXT NOT NULL,
    name       TEXT NOT NULL,
    body       TEXT NOT NULL,
    UNIQUE (project, name)
);
CREATE TABLE trials (
    project    TEXT NOT NULL,
    study      TEXT NOT NULL,
    id         INTEGER NOT NULL,
    body       TEXT NOT NULL,
    PRIMARY KEY (project, study, id)
);
