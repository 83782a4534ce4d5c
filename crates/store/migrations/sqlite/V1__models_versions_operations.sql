-- Models, versions and operations. Resources are stored whole as JSON documents (the API's own
-- representation), keyed by the columns that lists and uniqueness need.
CREATE TABLE models (
    project    TEXT NOT NULL,
    name       TEXT NOT NULL,
    body       TEXT NOT NULL,
    PRIMARY KEY (project, name)
);
CREATE TABLE versions (
    project    TEXT NOT NULL,
    model      TEXT NOT NULL,
    name       TEXT NOT NULL,
    is_default INTEGER NOT NULL DEFAULT 0,
    body       TEXT NOT NULL,
    PRIMARY KEY (project, model, name),
    FOREIGN KEY (project, model) REFERENCES models (project, name)
);
CREATE TABLE operations (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    project    TEXT NOT NULL,
    id         TEXT NOT NULL,
    done       INTEGER NOT NULL,
    body       TEXT NOT NULL,
    UNIQUE (project, id)
);
CREATE INDEX operations_unfinished ON operations (done) WHERE done = 0;
