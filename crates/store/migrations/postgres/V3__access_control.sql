-- Access control. Tokens keep the SHA-256 of their secret, never the secret; policies are keyed by
-- resource name; the audit log only ever grows. Tokens are listed in the order they were made:
-- `rowid` is named as SQLite's implicit column so that the query reads the same on both.
CREATE TABLE tokens (
    rowid      BIGINT GENERATED ALWAYS AS IDENTITY,
    id         TEXT PRIMARY KEY,
    hash       TEXT NOT NULL,
    body       TEXT NOT NULL
);
CREATE TABLE policies (
    resource   TEXT PRIMARY KEY,
    etag       TEXT NOT NULL,
    body       TEXT NOT NULL
);
CREATE TABLE audit_log (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project    TEXT NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX audit_log_project ON audit_log (project, seq);
