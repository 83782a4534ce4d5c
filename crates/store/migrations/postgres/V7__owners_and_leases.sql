-- Several servers may share one database. Each unfinished job and operation has an owner, the
-- server that watches it; each server holds a lease, renewed while it runs (`lease_until`, in
-- milliseconds since the Unix epoch). Another server takes over what an owner without a live
-- lease left. Rows from before owners existed have none, so the first server to start takes them.
CREATE TABLE servers (
    id          TEXT NOT NULL PRIMARY KEY,
    lease_until BIGINT NOT NULL
);
ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE operations ADD COLUMN owner TEXT NOT NULL DEFAULT '';
-- The ML-unit quota holds across the servers: a job waiting for its units records them
-- (`units`, in millionths of an ML unit); once admitted, they count against the quota until
-- it is done.
ALTER TABLE jobs ADD COLUMN units BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN admitted BOOLEAN NOT NULL DEFAULT FALSE;
