-- Training jobs. `processes` holds the executor's ids of a running job's replicas (not part of the
-- API), so a restarted server can attach to the replicas its predecessor started.
CREATE TABLE jobs (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project    TEXT NOT NULL,
    job_id     TEXT NOT NULL,
    done       BOOLEAN NOT NULL DEFAULT FALSE,
    processes  TEXT NOT NULL DEFAULT '[]',
    body       TEXT NOT NULL,
    UNIQUE (project, job_id)
);
CREATE INDEX jobs_active ON jobs (seq) WHERE NOT done;
