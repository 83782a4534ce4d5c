-- Training jobs. `processes` holds the executor's ids of a running job's replicas (not part of the
-- API), so a restarted server can attach to the replicas its predecessor started.
CREATE TABLE jobs (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    project    TEXT NOT NULL,
    job_id     TEXT NOT NULL,
    done       INTEGER NOT NULL DEFAULT 0,
    processes  TEXT NOT NULL DEFAULT '[]',
    body       TEXT NOT NULL,
    UNIQUE (project, job_id)
);
CREATE INDEX jobs_active ON jobs (done) WHERE done = 0;
