-- The operations studies return (`projects/{p}/locations/{l}/operations/{id}`), by full name.
CREATE TABLE location_operations (
    project    TEXT NOT NULL,
    name       TEXT NOT NULL,
    body       TEXT NOT NULL,
    PRIMARY KEY (project, name)
);
