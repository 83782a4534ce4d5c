-- Lists page through a project's jobs, operations and studies in creation order: an index on
-- (project, seq) reads a page where it starts instead of sorting the whole project.
CREATE INDEX jobs_project_seq ON jobs (project, seq);
CREATE INDEX operations_project_seq ON operations (project, seq);
CREATE INDEX studies_project_seq ON studies (project, seq);
