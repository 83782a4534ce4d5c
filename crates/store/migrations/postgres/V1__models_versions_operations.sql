-- Models, versions and operations. Resources are stored whole as JSON documents (the API's own
-- representation), keyed by the columns that lists and uniqueness need. The same tables as the
-- SQLite schema, in PostgreSQL's types: the store's queries are the same text on both.
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
    is_default BOOLEAN NOT NULL DEFAULT FALSE,
    body       TEXT NOT NULL,
    PRIMARY KEY (project, model, name),
    FOREIGN KEY (project, model) REFERENCES models (project, name)
);
CREATE TABLE operations (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project    TEXT NOT NULL,
    id         TEXT NOT NULL,
    done       BOOLEAN NOT NULL,
    body       TEXT NOT NULL,
    UNIQUE (project, id)
);
CREATE INDEX operations_unfinished ON operations (seq) WHERE NOT done;
