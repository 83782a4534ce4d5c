-- Access control. Tokens keep the SHA-256 of their secret, never the secret; policies are keyed by
-- resource name; the audit log only ever grows.
CREATE TABLE tokens (
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
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    project    TEXT NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX audit_log_project ON audit_log (project, seq);
